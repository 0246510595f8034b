"""Shared fixtures: one session-wide DETECTRON2_DATASETS directory holding generated lt_shapes."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def datasets_dir(tmp_path_factory):
    """A DETECTRON2_DATASETS root; lt_shapes / lt_shapes_mini are generated into it on first use.

    balms_det registers its datasets at import, under the DETECTRON2_DATASETS of that moment, so
    the in-process catalog is re-registered to point here as well."""
    root = str(tmp_path_factory.mktemp("datasets"))
    from balms_det.data.builtin import register_all_lt_shapes
    from detectron2.data import DatasetCatalog, MetadataCatalog

    for name in list(DatasetCatalog.keys()):
        if name.startswith("lt_shapes"):
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
    register_all_lt_shapes(root)
    return root


@pytest.fixture(scope="session")
def lt_shapes(datasets_dir):
    """Paths of the default lt_shapes dataset (generated once per test session)."""
    from balms_det.data import generate_lt_shapes

    return generate_lt_shapes(os.path.join(datasets_dir, "lt_shapes"))


def run_tool(args, datasets_dir, timeout=600, check=True, cwd=None):
    """Run ``python <args>`` in a subprocess with the test datasets root; return CompletedProcess."""
    env = dict(os.environ, DETECTRON2_DATASETS=datasets_dir, OMP_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable] + list(args), cwd=cwd or REPO, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"command failed ({proc.returncode}): {args}\n{proc.stdout[-6000:]}")
    return proc
