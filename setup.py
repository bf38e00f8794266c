"""The optional C accelerator (skqueue/_accel.c); everything else is in pyproject.toml.

``optional=True``: where it cannot be compiled (no compiler, no Python headers) the
build warns and the package installs pure Python, which is the reference anyway.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "skqueue._accel",
            ["skqueue/_accel.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
