"""Shim so pip can install this setup.cfg project (metadata lives in setup.cfg)."""

from setuptools import setup

setup()
