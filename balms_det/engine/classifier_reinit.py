"""``ClassifierReinitHook``: cRT's re-initialised classifier, the same on every DDP rank."""
import logging

import torch.distributed as dist
from detectron2.engine import HookBase
from detectron2.utils import comm

from ..modeling.decoupled import reinit_classifier

__all__ = ["ClassifierReinitHook"]

logger = logging.getLogger(__name__)


class ClassifierReinitHook(HookBase):
    """Re-initialises the box classifier(s) before training, only when starting fresh (``start_iter == 0``):
    after ``MODEL.WEIGHTS`` are loaded, and never on ``--resume``.

    The trainer has wrapped the model in DDP by then, which broadcast the parameters only when it was
    created, and each rank draws its own random numbers (detectron2 seeds rank ``r`` with ``seed + r``):
    rank 0's new classifier is broadcast to every rank, so that all train the same one."""

    def before_train(self):
        if getattr(self.trainer, "start_iter", self.trainer.iter) != 0:
            logger.info("Resuming: classifier not re-initialised.")
            return
        classifiers = reinit_classifier(self.trainer.model)
        world = comm.get_world_size()
        if world > 1:
            for p in (p for c in classifiers for p in c.parameters()):
                dist.broadcast(p.data, src=0)
        logger.info(f"Re-initialised {len(classifiers)} classifier(s) before decoupled training (cRT)"
                    + (f", broadcast from rank 0 to the {world} ranks." if world > 1 else "."))
