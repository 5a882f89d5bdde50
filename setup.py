"""Installs the repository's top-level folders under one import namespace, ``neurozoo``.

The folders stay where they are (``convrnn/``, ``retina/``, ...); ``package_dir`` maps each onto
``neurozoo.<folder>``, so nothing is installed as a top-level ``datasets`` or ``benchmarks`` (which
would shadow Hugging Face's ``datasets``). ``neurozoo`` itself is an implicit namespace package, so
third-party plugins may add ``neurozoo.*`` packages of their own. Metadata lives in setup.cfg.
"""
from setuptools import find_packages, setup

FOLDERS = ("convrnn", "retina", "benchmarks", "datasets", "leaderboard")

packages = [f"neurozoo.{package}" for folder in FOLDERS
            for package in find_packages(include=[folder, f"{folder}.*"])]

setup(packages=packages, package_dir={f"neurozoo.{folder}": folder for folder in FOLDERS})
