"""Shared fixtures: one session-wide DETECTRON2_DATASETS directory holding generated lt_shapes."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))  # the benchmarks' synthetic detections (fake_detections)
_SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache"}


def _repo_files():
    """Every file under the repository (but the VCS, the venv and Python's caches)."""
    out = set()
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
        out.update(os.path.join(root, f) for f in files)
    return out


def pytest_sessionstart(session):
    session.config._balms_repo_files = _repo_files()


def pytest_sessionfinish(session, exitstatus):
    """Tests write only under their tmp dirs: a file that appeared in the repository fails the run."""
    before = getattr(session.config, "_balms_repo_files", None)
    if before is None or os.environ.get("BALMS_ALLOW_REPO_WRITES"):
        return
    new = sorted(os.path.relpath(p, REPO) for p in _repo_files() - before)
    if new:
        print(f"\nFAILED: the tests wrote into the repository (they must write under tmp dirs): {new[:20]}")
        session.exitstatus = 1


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


FEW_VAL = "lt_shapes_mini_val_first3"  # lt_shapes_mini_val's first 3 images: a smoke test's evaluation
FEW_VAL_REGISTRATION = f"""
from detectron2.data import DatasetCatalog, MetadataCatalog

if "{FEW_VAL}" not in DatasetCatalog.list():
    full = MetadataCatalog.get("lt_shapes_mini_val")
    full.json_file  # lt_shapes is generated, and its metadata filled, on first use
    DatasetCatalog.register("{FEW_VAL}", lambda: DatasetCatalog.get("lt_shapes_mini_val")[:3])
    MetadataCatalog.get("{FEW_VAL}").set(**{{k: v for k, v in full.as_dict().items() if k != "name"}})
"""


def register_few_val():
    """Register FEW_VAL in this process; returns its name."""
    exec(FEW_VAL_REGISTRATION, {})
    return FEW_VAL


def few_val_import_file(tmp_path):
    """FEW_VAL's registration as a file for a tool's MODEL.BALMS.CUSTOM_IMPORTS; returns its path."""
    path = os.path.join(str(tmp_path), "few_val.py")
    with open(path, "w") as f:
        f.write(FEW_VAL_REGISTRATION)
    return path


def end_gloo_worker():
    """End a multi-process test's worker without destroying its gloo group: the group's destructor can
    deadlock (a gloo thread, freeing the last reference to a collective's tensor, waits for the GIL that
    the destructor holds while it joins that thread). The worker's results are on disk by now."""
    import torch.distributed as dist

    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def tiny_detection_inputs(num_classes, n=2, size=64, seed=0):
    """``n`` random images with two ground-truth instances each (class ``i % num_classes`` and
    ``num_classes - 1``), boxes and bit masks: a batch for one model step on CPU."""
    import torch
    from detectron2.structures import BitMasks, Boxes, Instances

    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        inst = Instances((size, size))
        inst.gt_boxes = Boxes(torch.tensor([[4.0, 6.0, 30.0, 34.0], [20.0, 16.0, 60.0, 50.0]]))
        inst.gt_classes = torch.tensor([i % num_classes, num_classes - 1])
        masks = torch.zeros(2, size, size, dtype=torch.bool)
        masks[0, 6:34, 4:30] = True
        masks[1, 16:50, 20:60] = True
        inst.gt_masks = BitMasks(masks)
        out.append({"image": torch.rand(3, size, size, generator=g) * 255, "instances": inst,
                    "height": size, "width": size})
    return out


def shared_data(name):
    """Path of a file in ../shared/data (or $BALMS_SHARED_DATA); skips the test where it is absent."""
    root = os.environ.get("BALMS_SHARED_DATA") or os.path.join(REPO, "..", "shared", "data")
    path = os.path.join(root, name)
    if not os.path.isfile(path):
        pytest.skip(f"{name} not found in {os.path.abspath(root)} (real LVIS test data lives beside the repo in "
                    "../shared/data, or set BALMS_SHARED_DATA)")
    return path


@pytest.fixture(scope="module")
def lvis_json():
    """The real LVIS v0.5 val ground truth of 100 images (skips where absent)."""
    return shared_data("lvis_v0.5_val_100.json")


@pytest.fixture(scope="module")
def lvis_dict(lvis_json):
    import json

    with open(lvis_json) as f:
        return json.load(f)
