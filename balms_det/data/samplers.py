"""Training samplers: a class-balanced sampler, and a train-loader builder honouring its name.

``DATALOADER.SAMPLER_TRAIN`` may be any detectron2 sampler name (``TrainingSampler``,
``RepeatFactorTrainingSampler`` with ``DATALOADER.REPEAT_THRESHOLD``, ...) or
``"ClassBalancedSampler"``: each sample picks a class uniformly among the classes present in the
training set, then an image containing it uniformly (class-aware sampling, Shen et al. 2016).

The Meta Reweighter's official meta loader (:func:`build_meta_train_loader`) is different: detectron2's
``RepeatFactorTrainingSampler`` with per-image repeat factor ``max_{c in image} 1 / f(c)``,
``f(c)`` = fraction of training images containing ``c`` (:func:`class_balanced_repeat_factors`),
as the official BALMS ``ClassBalancedTrainingSampler``.
"""
import itertools
import logging
from collections import defaultdict

import torch
from balms_eval.groups import count_per_class
from detectron2.data import build_detection_train_loader, get_detection_dataset_dicts
from detectron2.data.samplers import RepeatFactorTrainingSampler
from detectron2.utils import comm
from torch.utils.data.sampler import Sampler

__all__ = [
    "ClassBalancedSampler",
    "build_balms_train_loader",
    "class_balanced_repeat_factors",
    "build_meta_train_loader",
    "class_balanced_meta_sampler",
]

logger = logging.getLogger(__name__)


def _image_classes(d):
    return {a["category_id"] for a in d.get("annotations", []) if not a.get("iscrowd", 0)}


def _images_of_classes(dataset_dicts):
    """{class: [indices of the images containing it]} (crowd annotations skipped)."""
    images_of = defaultdict(list)
    for i, d in enumerate(dataset_dicts):
        for c in sorted(_image_classes(d)):
            images_of[c].append(i)
    if not images_of:
        raise ValueError("ClassBalancedSampler: the dataset has no annotations")
    return images_of


class ClassBalancedSampler(Sampler):
    """Infinite stream of dataset indices, class-balanced, sharded across workers like detectron2's
    ``TrainingSampler`` (same seed everywhere, worker ``r`` takes every ``world_size``-th index)."""

    def __init__(self, dataset_dicts, seed=None, shuffle_chunk=4096):
        images_of = _images_of_classes(dataset_dicts)
        self._classes = sorted(images_of)
        self._images = [torch.tensor(images_of[c]) for c in self._classes]
        self._seed = int(comm.shared_random_seed() if seed is None else seed)
        self._rank, self._world_size = comm.get_rank(), comm.get_world_size()
        self._chunk = shuffle_chunk

    @staticmethod
    def image_weights(dataset_dicts):
        """(N,) float64 expected draws of each image per N draws (N images): a draw picks one of the C
        classes uniformly, then one of its images uniformly, so image ``i`` is drawn with probability
        ``(1 / C) sum_{c in i} 1 / |images of c|``. The weights sum to N."""
        images_of = _images_of_classes(dataset_dicts)
        weights = torch.zeros(len(dataset_dicts), dtype=torch.float64)
        for images in images_of.values():
            weights[images] += 1.0 / len(images)
        return weights * (len(dataset_dicts) / len(images_of))

    def __iter__(self):
        yield from itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)

    def _infinite_indices(self):
        g = torch.Generator().manual_seed(self._seed)
        while True:
            cls = torch.randint(len(self._classes), (self._chunk,), generator=g).tolist()
            u = torch.rand(self._chunk, generator=g).tolist()
            for c, r in zip(cls, u):
                imgs = self._images[c]
                yield int(imgs[min(int(r * len(imgs)), len(imgs) - 1)])


def class_balanced_repeat_factors(dataset_dicts):
    """(N,) float32 per-image repeat factors ``max_{c in image} 1 / f(c)``, ``f(c)`` = fraction of the
    images containing class ``c`` (crowd annotations skipped); 1 for an image without classes."""
    per_image = [_image_classes(d) for d in dataset_dicts]
    images_with = count_per_class(d.get("annotations", []) for d in dataset_dicts)
    n = len(dataset_dicts)
    return torch.tensor([max((n / images_with[c] for c in classes), default=1.0) for classes in per_image],
                        dtype=torch.float32)


def _train_dataset_dicts(cfg):
    return get_detection_dataset_dicts(
        cfg.DATASETS.TRAIN,
        filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
        min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0,
        proposal_files=cfg.DATASETS.PROPOSAL_FILES_TRAIN if cfg.MODEL.LOAD_PROPOSALS else None,
    )


def build_balms_train_loader(cfg, mapper=None):
    """detectron2's ``build_detection_train_loader(cfg, mapper)``, plus ``ClassBalancedSampler``."""
    if cfg.DATALOADER.SAMPLER_TRAIN != "ClassBalancedSampler":
        return build_detection_train_loader(cfg, mapper=mapper)
    dataset = _train_dataset_dicts(cfg)
    logger.info("Using training sampler ClassBalancedSampler")
    sampler = ClassBalancedSampler(dataset, seed=cfg.SEED if cfg.SEED >= 0 else None)
    return build_detection_train_loader(cfg, mapper=mapper, dataset=dataset, sampler=sampler)


def class_balanced_meta_sampler(dataset_dicts, seed=None):
    """The meta images' sampler (``META_SOURCE: images``, the official BALMS setting), with explicit
    arguments for Python configs: detectron2's ``RepeatFactorTrainingSampler`` with
    :func:`class_balanced_repeat_factors`."""
    factors = class_balanced_repeat_factors(dataset_dicts)
    logger.info(f"Meta loader: class-balanced repeat factors, min {factors.min():.2f} / max {factors.max():.2f}")
    return RepeatFactorTrainingSampler(factors, seed=seed)


def build_meta_train_loader(cfg, mapper=None):
    """The Meta Reweighter's meta images (``META_SOURCE: images``): the training sets, sampled with
    :func:`class_balanced_meta_sampler`, ``SOLVER.IMS_PER_BATCH`` images per batch (all workers)."""
    dataset = _train_dataset_dicts(cfg)
    sampler = class_balanced_meta_sampler(dataset, seed=cfg.SEED + 1 if cfg.SEED >= 0 else None)
    return build_detection_train_loader(cfg, mapper=mapper, dataset=dataset, sampler=sampler)
