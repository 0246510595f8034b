#!/usr/bin/env python
"""balms_det: Balanced Meta-Softmax for long-tailed instance segmentation, as a detectron2 extension.

torch and detectron2 are not declared here on purpose (as in detectron2's own projects): detectron2
has no official PyPI release, and the distribution that provides ``import detectron2`` differs by
machine (``sal-detectron2`` wheel, or upstream built from source). ``scripts/setup_env.sh`` installs
a matching, pinned pair; see README.md.
"""
from setuptools import find_packages, setup

setup(
    name="balms_det",
    version="0.1.0",
    description="Balanced Softmax / Meta Reweighter ROI heads and fast LVIS evaluation for detectron2",
    packages=find_packages(exclude=("tests", "tools", "benchmarks", "configs")),
    python_requires=">=3.8",
    install_requires=[
        "numpy",
        "opencv-python",
        "pycocotools",
        "lvis",
        "hotcoco",
        "orjson",
        "matplotlib",
        "tabulate",
        "fvcore",
        "iopath",
    ],
    extras_require={"test": ["pytest"]},
)
