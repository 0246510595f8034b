"""Meta Reweighter in a real detector: the official setting (class-balanced meta images through the
frozen detector) and the feature bank against a brute-force create_graph reference through the whole
model; config and hook errors; cascade (one theta per stage); DDP (theta bit-identical on 2 gloo
ranks); checkpoints (resume restores theta, Adam state and bank bit for bit; a stage-1 checkpoint
starts from theta = 0); tools/train_net.py end to end (scalars, meta_weights files); CUDA / AMP."""
import copy
import json
import os
import re
import warnings
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine import HookBase, SimpleTrainer
from detectron2.modeling import build_model
from detectron2.solver import build_optimizer
from detectron2.utils.events import EventStorage
from torch.func import functional_call
from torch.nn import functional as F

from balms_det.engine import MetaReweighterHook, create_ddp_model
from balms_det.modeling import apply_decoupled
from conftest import REPO, end_gloo_worker, run_tool, tiny_detection_inputs
from test_decoupled import tiny_cfg

torch.set_num_threads(1)
K = 4
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def balms_cfg(cls_loss="balanced_softmax", source="images", head="BalancedSoftmaxROIHeads"):
    cfg = tiny_cfg(cls_loss)
    cfg.merge_from_list([
        "MODEL.ROI_HEADS.NAME", head, "MODEL.BALMS.META_REWEIGHTER.ENABLED", "True",
        "MODEL.BALMS.META_REWEIGHTER.META_SOURCE", source, "MODEL.BALMS.META_REWEIGHTER.LR", "0.05",
        "MODEL.BALMS.META_REWEIGHTER.BANK_PER_CLASS", "4", "MODEL.BALMS.META_REWEIGHTER.BANK_BACKGROUND", "64",
        "SOLVER.BASE_LR", "0.5", "SOLVER.MOMENTUM", "0.9", "SOLVER.WEIGHT_DECAY", "0.01",
    ])
    if head == "BalancedSoftmaxCascadeROIHeads":
        cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = True
    return cfg


def build(cfg):
    torch.manual_seed(0)
    model = apply_decoupled(build_model(cfg), cfg)
    model.train()
    return model, build_optimizer(cfg, model)


class FakeTrainer(SimpleNamespace):
    """What the hook reads of a trainer: model, optimizer, iter, max_iter, storage."""


def hooked(cfg, model, optimizer, storage, meta_images):
    hook = MetaReweighterHook(cfg, meta_loader=iter(meta_images))
    hook.trainer = FakeTrainer(model=model, optimizer=optimizer, iter=0, max_iter=100, storage=storage)
    hook.before_train()
    return hook


def train_step(model, optimizer, hook, data, it, meta_seed, seed):
    hook.trainer.iter = it
    torch.manual_seed(meta_seed)
    hook.before_step()
    torch.manual_seed(seed)
    loss = sum(model(data).values())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    hook.after_step()


class RefWeights(torch.nn.Module):
    """Stands in for the MetaReweighter in the reference: differentiable ROI weights from theta,
    written out (no meta step); in the bank case it draws the meta batch from a copy of the bank
    at the same point of the RNG stream as the real step does."""

    capturing, meta_loss = False, "plain"  # what the predictor reads of a reweighter

    def __init__(self, theta, bank=None):
        super().__init__()
        self.theta, self.bank, self.meta = theta, bank, None

    def step(self, classifier, features, gt_classes, roi_loss_fn, meta_loss_fn):
        if self.bank is not None:
            n_fg = int((gt_classes < K).sum())
            self.meta = self.bank.sample(n_fg, gt_classes.numel() - n_fg)
        s = torch.sigmoid(self.theta)[gt_classes.clamp(max=K - 1)]
        fg = gt_classes < K
        return torch.where(fg, s * fg.sum() / (s * fg).sum(), torch.ones_like(s))


def virtual_sgd(optimizer, params, grads):
    """torch.optim.SGD's step written out, differentiable (momentum, dampening 0, weight decay)."""
    out = {}
    for (name, p), g in zip(params.items(), grads):
        group = next(gr for gr in optimizer.param_groups if any(q is p for q in gr["params"]))
        d = g + group["weight_decay"] * p
        buf = optimizer.state[p].get("momentum_buffer")
        d = d if buf is None else group["momentum"] * buf + d
        out[name] = p - group["lr"] * d
    return out


@pytest.mark.parametrize("cls_loss,source,meta_loss", [
    ("balanced_softmax", "images", "plain"), ("balanced_sigmoid", "images", "plain"),
    ("balanced_softmax", "bank", "plain"), ("balanced_sigmoid", "bank", "plain"),
    ("balanced_sigmoid", "images", "adjusted"),  # what the official code's meta loss computes
])
def test_meta_step_equals_brute_force_through_the_whole_detector(cls_loss, source, meta_loss):
    cfg = balms_cfg(cls_loss, source)
    cfg.MODEL.BALMS.META_REWEIGHTER.META_LOSS = meta_loss
    model, optimizer = build(cfg)
    predictor = model.roi_heads.box_predictor
    r = predictor.meta_reweighter
    train = [tiny_detection_inputs(K, seed=s) for s in (10, 11)]
    meta = [tiny_detection_inputs(K, seed=s) for s in (20, 21)]
    with EventStorage() as storage:
        hook = hooked(cfg, model, optimizer, storage, meta)
        train_step(model, optimizer, hook, train[0], 0, 100, 200)  # iteration 0: momentum buffers, bank filled
        assert r.adam_step.item() == (1 if source == "images" else 0)  # the bank is empty at iteration 0

        theta0 = r.theta.detach().clone().double().requires_grad_()
        state = copy.deepcopy((r.adam_exp_avg, r.adam_exp_avg_sq, r.adam_step))
        bank = copy.deepcopy(r.bank)
        names = ("roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.cls_score.bias")
        params = {n: p for n, p in model.named_parameters() if n in names}
        assert set(params) == set(names)

        # ours: one iteration (meta forward of the meta images, then the training forward)
        hook.trainer.iter = 1
        torch.manual_seed(101)
        hook.before_step()
        torch.manual_seed(201)
        model(train[1])
        ours = r.last_hypergrad.clone()

        # brute force: the weighted training loss of the whole detector as a function of theta and the
        # classifier (create_graph), the virtual SGD step, the plain loss of the whole detector on the
        # meta images (or of the box predictor on the bank's meta batch) with the moved classifier.
        predictor.meta_reweighter = ref = RefWeights(theta0, bank)
        try:
            torch.manual_seed(201)
            loss = functional_call(model, params, (train[1],))["loss_cls"]
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
            moved = virtual_sgd(optimizer, params, grads)
            plain = predictor.plain_classification_loss if meta_loss == "plain" else predictor.classification_loss
            if source == "images":
                predictor.meta_reweighter = None  # the meta images' loss_cls, unweighted: adjusted ...
            if source == "images" and meta_loss == "plain":  # ... or plain (the per-ROI loss written out)
                predictor.per_roi_classification_loss = lambda z, y: (
                    F.cross_entropy(z, y, reduction="none") if z.shape[1] == K + 1 else
                    F.binary_cross_entropy_with_logits(z, F.one_hot(y, K + 1)[:, :K].to(z), reduction="none").sum(1))
            if source == "images":
                torch.manual_seed(101)
                ref_meta_loss = functional_call(model, moved, (meta[1],))["loss_cls"]
            else:
                short = {n.split("box_predictor.")[1]: v for n, v in moved.items()}
                meta_x, meta_y = ref.meta
                assert meta_y.numel() > 0
                ref_meta_loss = plain(functional_call(predictor, short, (meta_x,))[0], meta_y)
        finally:
            predictor.meta_reweighter = r
            predictor.__dict__.pop("per_roi_classification_loss", None)
        (ref_grad,) = torch.autograd.grad(ref_meta_loss, theta0)
    assert ref_grad.abs().sum() > 0
    assert torch.allclose(r.last_meta_loss.double(), ref_meta_loss.detach().double(), rtol=1e-5)
    assert torch.allclose(ours.double(), ref_grad, rtol=1e-4, atol=1e-7), (ours, ref_grad)
    # and the Adam step on it (torch.optim.Adam, from the saved moments)
    th = theta0.detach().clone().float().requires_grad_()
    adam = torch.optim.Adam([th], lr=0.05)
    adam.state[th] = {"step": state[2].clone(), "exp_avg": state[0].clone(), "exp_avg_sq": state[1].clone()}
    th.grad = ours.clone()
    adam.step()
    assert torch.allclose(r.theta, th.detach(), atol=1e-7)


def test_config_and_hook_errors():
    cfg = balms_cfg()
    cfg.MODEL.BALMS.DECOUPLED.ENABLED = False
    with pytest.raises(ValueError, match="DECOUPLED.ENABLED"):  # (checked where the reweighter is built)
        build_model(cfg)

    cfg = balms_cfg()
    cfg.MODEL.BALMS.DECOUPLED.TRAINABLE = [r"roi_heads\.box_(predictor|head)\."]
    model, optimizer = build(cfg)
    with EventStorage() as storage, pytest.raises(ValueError, match="box_head"):
        hooked(cfg, model, optimizer, storage, [])

    cfg = balms_cfg()
    model, _ = build(cfg)
    with EventStorage() as storage, pytest.raises(TypeError, match="SGD"):
        hooked(cfg, model, torch.optim.Adam([p for p in model.parameters() if p.requires_grad]), storage, [])
    with EventStorage(), pytest.raises(RuntimeError, match="MetaReweighterHook"):
        model(tiny_detection_inputs(K))  # training without the hook

    cfg = balms_cfg()
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    model, optimizer = build(cfg)
    with EventStorage() as storage, pytest.raises(ValueError, match="BalancedSoftmaxROIHeads"):
        hooked(cfg, model, optimizer, storage, [])


def test_cascade_has_one_theta_per_stage_and_stage_scalars():
    cfg = balms_cfg(source="bank", head="BalancedSoftmaxCascadeROIHeads")
    cfg.MODEL.BALMS.META_REWEIGHTER.LOG_PERIOD = 3
    model, optimizer = build(cfg)
    reweighters = [p.meta_reweighter for p in model.roi_heads.box_predictor]
    assert len(reweighters) == 3 and len({id(r) for r in reweighters}) == 3
    with EventStorage() as storage:
        hook = hooked(cfg, model, optimizer, storage, [])
        for it in range(3):
            train_step(model, optimizer, hook, tiny_detection_inputs(K, seed=it), it, it, 50 + it)
        scalars = storage.latest()
    thetas = [r.theta.clone() for r in reweighters]
    assert all(r.adam_step.item() == 2 for r in reweighters)  # iterations 1 and 2 (bank empty at 0)
    assert not torch.equal(thetas[0], thetas[1]) and not torch.equal(thetas[1], thetas[2])
    assert {f"meta/stage{k}/w_min" for k in range(3)} <= set(scalars)


def test_meta_step_under_autocast_runs_in_float32():
    """Mixed precision (CPU bfloat16 autocast here; AMPTrainer's CUDA float16 alike): the box features
    arrive in low precision, the meta step itself runs in float32 with autocast off."""
    cfg = balms_cfg("balanced_softmax", "images")
    grads = {}
    for amp in (False, True):
        model, optimizer = build(cfg)
        r = model.roi_heads.box_predictor.meta_reweighter
        with EventStorage() as storage, torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            hook = hooked(cfg, model, optimizer, storage, [tiny_detection_inputs(K, seed=3)])
            hook.before_step()
            torch.manual_seed(0)
            losses = model(tiny_detection_inputs(K, seed=4))
        assert torch.isfinite(r.theta).all()
        assert torch.isfinite(losses["loss_cls"])
        grads[amp] = r.last_hypergrad.clone()
    assert grads[True].abs().sum() > 0
    assert torch.allclose(grads[True], grads[False], rtol=0.1, atol=1e-3 * grads[False].abs().max())


def _training_data(device="cpu"):
    i = 0
    while True:
        batch = tiny_detection_inputs(K, seed=i)
        yield [dict(d, image=d["image"].to(device), instances=d["instances"].to(device)) for d in batch]
        i += 1


class RecordMetaForward(HookBase):
    """Records, for each forward of the box predictor, whether it ran a meta batch, whether autocast
    was on (CPU or CUDA) and its dtype."""

    def __init__(self):
        self.calls = []

    def before_train(self):
        predictor = _unwrap_predictor(self.trainer.model)

        def record(module, inputs):
            cuda = inputs[0].is_cuda
            self.calls.append((module.meta_reweighter.capturing,
                               torch.is_autocast_enabled() if cuda else torch.is_autocast_cpu_enabled(),
                               torch.get_autocast_gpu_dtype() if cuda else torch.get_autocast_cpu_dtype()))

        predictor.register_forward_pre_hook(record)


def _unwrap_predictor(model):
    return (model.module if hasattr(model, "module") else model).roi_heads.box_predictor


PER_STEP_METRICS = ("roi_head/num_fg_samples", "roi_head/num_bg_samples", "fast_rcnn/cls_accuracy",
                    "rpn/num_pos_anchors", "mask_rcnn/accuracy")


def _check_one_entry_per_iteration(storage, iterations):
    assert set(PER_STEP_METRICS) <= set(storage.histories())
    for name, history in storage.histories().items():  # every scalar: at most one value per iteration
        its = [it for _, it in history.values()]
        assert len(its) == len(set(its)), (name, its)
    for name in PER_STEP_METRICS:  # the training batch's, every iteration
        assert [it for _, it in storage.history(name).values()] == list(range(iterations)), name


def test_meta_images_forward_logs_nothing_to_the_trainers_storage(tmp_path):
    """META_SOURCE images: the meta images' forward (the whole detector, in training mode) is not a
    training step: the trainer's storage gets each iteration's ROI / RPN / mask statistics once, from
    the training batch (a real SimpleTrainer run)."""
    cfg = balms_cfg("balanced_softmax", "images")
    cfg.OUTPUT_DIR = str(tmp_path)  # after_train writes meta_weights.* there
    model, optimizer = build(cfg)
    trainer = SimpleTrainer(model, _training_data(), optimizer)
    record = RecordMetaForward()
    meta = (tiny_detection_inputs(K, seed=500 + i) for i in range(100))
    trainer.register_hooks([MetaReweighterHook(cfg, meta_loader=meta), record])
    trainer.train(0, 3)
    assert [c[0] for c in record.calls] == [True, False] * 3  # each iteration: meta images, then the batch
    assert model.roi_heads.box_predictor.meta_reweighter.adam_step.item() == 3
    _check_one_entry_per_iteration(trainer.storage, 3)


def test_meta_images_forward_runs_under_the_amp_trainers_autocast():
    """The meta images' forward runs under the precision of the trainer's step: AMPTrainer's autocast
    (its ``precision``), directly or held by a DefaultTrainer as ``_trainer``; none with SimpleTrainer.
    AMPTrainer trains on CUDA only: here (CPU) its hook is driven in-process, the autocast entered on
    the model's device, CPU bfloat16 (the CUDA run: test_cuda_amp_meta_images_forward_under_autocast)."""
    from detectron2.engine import AMPTrainer

    cfg = balms_cfg("balanced_softmax", "images")
    seen = {}
    for kind in ("simple", "amp", "default"):
        model, optimizer = build(cfg)
        if kind == "simple":
            trainer = SimpleTrainer(model, _training_data(), optimizer)
        else:
            with warnings.catch_warnings():  # its GradScaler: no CUDA here, disabled (only the step uses it)
                warnings.simplefilter("ignore")
                trainer = AMPTrainer(model, _training_data(), optimizer, precision=torch.bfloat16)
            if kind == "default":  # what DefaultTrainer is to its hooks: the loop is its _trainer
                trainer = FakeTrainer(model=model, optimizer=optimizer, iter=0, max_iter=10, _trainer=trainer)
        hook, record = MetaReweighterHook(cfg, meta_loader=iter([tiny_detection_inputs(K, seed=3)])), RecordMetaForward()
        for h in (hook, record):
            h.trainer = trainer
            h.before_train()
        with EventStorage(0) as storage:
            hook.before_step()
        assert not storage.histories()  # (nothing of it in the trainer's storage either)
        assert [c[0] for c in record.calls] == [True]
        seen[kind] = record.calls[0][1:]
        assert torch.isfinite(model.roi_heads.box_predictor.meta_reweighter._captured[0]).all()
    assert seen["simple"][0] is False
    assert seen["amp"] == seen["default"] == (True, torch.bfloat16)


@cuda
def test_cuda_amp_meta_images_forward_under_autocast(tmp_path):
    """AMPTrainer on CUDA, META_SOURCE images: the meta forward under autocast float16 as the step's,
    its events kept out of the trainer's storage."""
    from detectron2.engine import AMPTrainer

    cfg = balms_cfg("balanced_softmax", "images")
    cfg.MODEL.DEVICE = "cuda"
    cfg.OUTPUT_DIR = str(tmp_path)  # after_train writes meta_weights.* there
    model, optimizer = build(cfg)
    trainer = AMPTrainer(model, _training_data("cuda"), optimizer)
    record = RecordMetaForward()
    meta = ([dict(d, image=d["image"].cuda(), instances=d["instances"].to("cuda"))
             for d in tiny_detection_inputs(K, seed=500 + i)] for i in range(100))
    trainer.register_hooks([MetaReweighterHook(cfg, meta_loader=meta), record])
    trainer.train(0, 3)
    assert record.calls == [(True, True, torch.float16), (False, True, torch.float16)] * 3
    _check_one_entry_per_iteration(trainer.storage, 3)
    r = model.roi_heads.box_predictor.meta_reweighter
    assert r.adam_step.item() == 3 and torch.isfinite(r.theta).all()


# ------------------------------------------------------------------ DDP: 2 gloo processes
def _ddp_worker(rank, world, init_file, source, out_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    cfg = balms_cfg("balanced_sigmoid", source)
    cfg.OUTPUT_DIR = os.path.dirname(out_file)  # after_train writes meta_weights.* there
    model, optimizer = build(cfg)
    model = create_ddp_model(model, broadcast_buffers=False)
    seen = []

    class Check(HookBase):
        def after_step(self):
            theta = self.trainer.model.module.roi_heads.box_predictor.meta_reweighter.theta
            gathered = [torch.zeros_like(theta) for _ in range(world)]
            dist.all_gather(gathered, theta)
            seen.append(all(torch.equal(gathered[0], t) for t in gathered))

    def data():  # every rank and iteration its own images
        i = 0
        while True:
            yield tiny_detection_inputs(K, seed=1000 * rank + i)
            i += 1

    trainer = SimpleTrainer(model, data(), optimizer)
    meta = (tiny_detection_inputs(K, seed=500 * rank + i) for i in range(100))
    trainer.register_hooks([MetaReweighterHook(cfg, meta_loader=meta), Check()])
    trainer.train(0, 4)
    r = model.module.roi_heads.box_predictor.meta_reweighter
    torch.save({"equal": seen, "theta": r.theta, "m": r.adam_exp_avg, "v": r.adam_exp_avg_sq}, f"{out_file}.{rank}")
    end_gloo_worker()


@pytest.mark.parametrize("source", ["bank", "images"])
def test_ddp_theta_is_bit_identical_on_every_rank(tmp_path, source):
    out = str(tmp_path / "state")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), source, out), nprocs=2, join=True)
    a, b = torch.load(f"{out}.0"), torch.load(f"{out}.1")
    assert a["equal"] == [True] * 4 and b["equal"] == [True] * 4
    for k in ("theta", "m", "v"):
        assert torch.equal(a[k], b[k]), k
    assert a["theta"].abs().sum() > 0  # the ranks did learn, from different batches


# ------------------------------------------------------------------ DDP: the meta step's average
D_AVG = 6


def _avg_data(rank, step):
    """Rank- and step-specific training ROIs and meta batch; rank 1 has no meta batch at step 1."""
    g = torch.Generator().manual_seed(100 * rank + step)
    x = torch.randn(24, D_AVG, generator=g)
    y = torch.randint(0, K + 1, (24,), generator=g)
    n_meta = 0 if (rank, step) == (1, 1) else 16
    mx = torch.randn(n_meta, D_AVG, generator=g)
    my = torch.randint(0, K + 1, (n_meta,), generator=g)
    return x, y, mx, my


def _avg_classifier():
    torch.manual_seed(7)
    lin = torch.nn.Linear(D_AVG, K + 1)
    return lin, torch.optim.SGD(lin.parameters(), lr=0.5, momentum=0.0, weight_decay=0.01)


def _roi_loss(z, y):
    return F.cross_entropy(z, y, reduction="none")


def _meta_loss(z, y):
    return F.cross_entropy(z, y)


def _avg_worker(rank, init_file, out_file):
    from balms_det.modeling.meta_reweighter import MetaReweighter
    from balms_det.modeling.meta_step import sgd_rules

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    lin, opt = _avg_classifier()
    r = MetaReweighter(K, D_AVG, source="images", lr=0.05)
    thetas = []
    for step in range(2):
        x, y, mx, my = _avg_data(rank, step)
        r.prepare(step, sgd_rules(opt, dict(lin.named_parameters())), True)
        r.capture(mx, my)
        r.step(lin, x, y, _roi_loss, _meta_loss)
        thetas.append(r.theta.clone())
    torch.save(thetas, f"{out_file}.{rank}")
    end_gloo_worker()


def test_ddp_meta_step_takes_one_adam_step_on_the_mean_hypergradient(tmp_path):
    """2 gloo ranks with different data: theta after a step is one Adam step on the mean of the two
    hypergradients computed apart, in one process each; at a step where rank 1 has no meta batch, on
    rank 0's alone (the mean over the ranks that had one). Broadcasting rank 0's theta, summing
    instead of averaging, or averaging over all ranks would each give another theta."""
    from balms_det.modeling.meta_step import adam_step_, meta_hypergradient, sgd_rules

    out = str(tmp_path / "theta")
    mp.start_processes(_avg_worker, args=(str(tmp_path / "init"), out), nprocs=2, start_method="spawn")
    ranks = [torch.load(f"{out}.{r}") for r in (0, 1)]
    lin, opt = _avg_classifier()
    rules = sgd_rules(opt, dict(lin.named_parameters()))
    theta, m, v, t = torch.zeros(K), torch.zeros(K), torch.zeros(K), torch.zeros(())
    for step in range(2):
        grads = []
        for rank in (0, 1):
            x, y, mx, my = _avg_data(rank, step)
            if my.numel():
                grads.append(meta_hypergradient(theta, lin, dict(lin.named_parameters()), rules, x, y, _roi_loss,
                                                mx, my, _meta_loss)[1])
        assert len(grads) == (2 if step == 0 else 1)
        mean = sum(grads) / len(grads)
        if step == 0:
            assert not torch.allclose(grads[0], grads[1], rtol=0.05)  # the ranks' data differ
        adam_step_(theta, mean, m, v, t, lr=0.05)
        for rank in (0, 1):
            torch.testing.assert_close(ranks[rank][step], theta, rtol=1e-5, atol=1e-7)
    assert torch.equal(ranks[0][1], ranks[1][1])


def test_meta_step_under_bf16_autocast_is_the_float32_step():
    """Box features and meta batch arrive in bfloat16 under autocast: the hypergradient equals the
    float32 one computed from the same (bf16-rounded) values without autocast, to float32 precision;
    a meta step left to autocast (bf16 matmuls) is off by ~1e-2 and fails this."""
    from balms_det.modeling.meta_reweighter import MetaReweighter
    from balms_det.modeling.meta_step import meta_hypergradient, sgd_rules

    lin, opt = _avg_classifier()
    rules = sgd_rules(opt, dict(lin.named_parameters()))
    x, y, mx, my = (t.bfloat16() if t.is_floating_point() else t for t in _avg_data(0, 0))
    r = MetaReweighter(K, D_AVG, source="images")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        r.prepare(0, rules, True)
        r.capture(mx, my)
        r.step(lin, x, y, _roi_loss, _meta_loss)
    _, ref = meta_hypergradient(torch.zeros(K), lin, dict(lin.named_parameters()), rules, x.float(), y, _roi_loss,
                                mx.float(), my, _meta_loss)
    assert ref.abs().min() > 0
    torch.testing.assert_close(r.last_hypergrad, ref, rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------ train_net: resume, outputs
TINY = [
    "DATASETS.TRAIN", "('lt_shapes_mini_train',)", "DATASETS.TEST", "('lt_shapes_mini_val',)",
    "SOLVER.IMS_PER_BATCH", "2", "SOLVER.STEPS", "()", "SOLVER.WARMUP_ITERS", "0",
    "SOLVER.CHECKPOINT_PERIOD", "2", "DATALOADER.NUM_WORKERS", "0", "TEST.DETECTIONS_PER_IMAGE", "20",
    "MODEL.RPN.POST_NMS_TOPK_TEST", "50", "MODEL.BALMS.META_REWEIGHTER.LOG_PERIOD", "2",
]
STAGE1 = os.path.join(REPO, "configs/LTShapes/mask_rcnn_R18_FPN_softmax.yaml")
BALMS = os.path.join(REPO, "configs/LTShapes/mask_rcnn_R18_FPN_decoupled_balms.yaml")


@pytest.fixture(scope="module")
def balms_run(datasets_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("balms")
    run_tool(["tools/train_net.py", "--config-file", STAGE1, *TINY, "SOLVER.MAX_ITER", "1", "TEST.EVAL_PERIOD", "0",
              "DATASETS.TEST", "()", "OUTPUT_DIR", str(root / "stage1")], datasets_dir)
    weights = str(root / "stage1" / "model_final.pth")
    proc = run_tool(["tools/train_net.py", "--config-file", BALMS, *TINY, "SOLVER.MAX_ITER", "4",
                     "DATASETS.TEST", "()",  # (no test asserts on an evaluation of this run)
                     "MODEL.WEIGHTS", weights, "OUTPUT_DIR", str(root / "stage2")], datasets_dir)
    return root, weights, proc.stdout


def _trainer(datasets_dir, *opts):
    from balms_det.engine import build_config
    from test_configs import _trainer_cls

    cfg = build_config(BALMS, TINY + list(opts))
    cfg.freeze()
    return _trainer_cls()(cfg)


def test_train_net_logs_scalars_and_writes_meta_weights(balms_run):
    root, _, log = balms_run
    out = root / "stage2"
    with open(out / "metrics.json") as f:
        metrics = [json.loads(line) for line in f]
    with open(out / "meta_weights.json") as f:
        rows = json.load(f)["classes"]
    groups = {r["frequency"] for r in rows}
    assert len(groups) >= 2 and groups <= {"r", "c", "f"} and rows[0]["name"]
    logged = [m for m in metrics if "meta/loss" in m]
    assert logged and logged[-1]["iteration"] == 3  # the JSON writer keeps each scalar's latest value
    for m in logged:
        assert {f"meta/w_mean_{g}" for g in groups} | {"meta/w_min", "meta/w_max"} <= set(m)
        assert 0 < m["meta/w_min"] <= m["meta/w_max"] < 1 and m["meta/loss"] > 0
    final = torch.load(out / "model_final.pth", map_location="cpu")
    theta = _hook_state(final)["theta"]
    assert len(rows) == 40 and [r["theta"] for r in rows] == pytest.approx(theta.tolist(), abs=0)
    assert os.path.getsize(out / "meta_weights.png") > 10_000 and os.path.isfile(out / "meta_weights.csv")
    # training state is the hook's: nothing of it in the model, no bank in the final checkpoint
    assert not [k for k in final["model"] if "meta_reweighter" in k] and "bank" not in _hook_state(final)
    # nothing of it reported missing from the stage-1 weights (as "meta_reweighter.{adam_exp_avg, ...}" was)
    assert "meta_reweighter.{" not in log and "meta_reweighter.theta" not in log


def _hook_state(checkpoint, predictor="roi_heads.box_predictor"):
    """The meta reweighter's training state in a checkpoint written by the trainer (its hook's)."""
    return checkpoint["trainer"]["hooks"]["MetaReweighterHook"]["reweighters"][predictor]


def test_resume_restores_theta_adam_and_bank_bit_for_bit(balms_run, datasets_dir):
    root, weights, _ = balms_run
    out = root / "stage2"
    saved = torch.load(out / "model_0000001.pth", map_location="cpu")
    (out / "last_checkpoint").write_text("model_0000001.pth")
    trainer = _trainer(datasets_dir, "MODEL.WEIGHTS", weights, "OUTPUT_DIR", str(out))
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == 2
    state = trainer.model.roi_heads.box_predictor.meta_reweighter.training_state()
    expected = _hook_state(saved)
    assert expected["adam_step"].item() == 1 and expected["bank"]["count"][:-1].sum() > 0
    for k in ("theta", "adam_exp_avg", "adam_exp_avg_sq", "adam_step"):
        assert torch.equal(state[k], expected[k]), k
    for k in ("features", "count", "ptr"):
        assert torch.equal(state["bank"][k], expected["bank"][k]), k

    fresh = _trainer(datasets_dir, "MODEL.WEIGHTS", weights, "OUTPUT_DIR", str(root / "fresh"))
    fresh.resume_or_load(resume=False)  # a stage-1 checkpoint has no theta: start from 0
    r = fresh.model.roi_heads.box_predictor.meta_reweighter
    assert torch.equal(r.theta, torch.zeros(40)) and r.adam_step.item() == 0 and r.bank.num_stored() == (0, 0)


def test_meta_source_images_through_train_net_with_its_loader(balms_run, datasets_dir, tmp_path):
    """The official setting end to end: tools/train_net.py builds the class-balanced meta loader
    (build_meta_train_loader) and runs its images through the frozen detector every iteration."""
    _, weights, _ = balms_run
    proc = run_tool(["tools/train_net.py", "--config-file", BALMS, *TINY, "SOLVER.MAX_ITER", "2", "DATASETS.TEST", "()",
                     "MODEL.BALMS.META_REWEIGHTER.META_SOURCE", "images", "MODEL.WEIGHTS", weights,
                     "OUTPUT_DIR", str(tmp_path)], datasets_dir)
    assert re.search(r"Meta loader: class-balanced repeat factors, min [0-9.]+ / max [0-9.]+", proc.stdout), proc.stdout
    theta = _hook_state(torch.load(tmp_path / "model_final.pth", map_location="cpu"))["theta"]
    assert theta.abs().sum() > 0
    with open(tmp_path / "metrics.json") as f:
        assert [m for m in map(json.loads, f) if m.get("meta/loss", 0) > 0]


CRT = os.path.join(REPO, "configs/LTShapes/mask_rcnn_R18_FPN_crt_class_balanced.yaml")


def test_crt_config_trains_and_resumes_through_train_net(balms_run, datasets_dir, tmp_path):
    """cRT from stage-1 weights: the classifier is re-initialised once, when the run starts; a resumed
    run keeps the checkpoint's classifier."""
    from balms_det.engine import build_config
    from test_configs import _trainer_cls

    _, weights, _ = balms_run
    common = [*TINY, "DATASETS.TEST", "()", "MODEL.WEIGHTS", weights, "OUTPUT_DIR", str(tmp_path)]
    proc = run_tool(["tools/train_net.py", "--config-file", CRT, *common, "SOLVER.MAX_ITER", "4"], datasets_dir)
    assert "Re-initialised 1 classifier(s) before decoupled training (cRT)." in proc.stdout
    stage1 = torch.load(weights, map_location="cpu")["model"]
    ckpt = torch.load(tmp_path / "model_0000001.pth", map_location="cpu")["model"]
    key = "roi_heads.box_predictor.cls_score.weight"
    # a new draw at the start, 2 small steps from it: unrelated to stage 1's classifier
    assert F.cosine_similarity(ckpt[key].flatten(), stage1[key].flatten(), dim=0) < 0.5
    (tmp_path / "last_checkpoint").write_text("model_0000001.pth")
    proc = run_tool(["tools/train_net.py", "--config-file", CRT, "--resume", *common, "SOLVER.MAX_ITER", "4"],
                    datasets_dir)
    assert "Starting training from iteration 2" in proc.stdout
    assert "Resuming: classifier not re-initialised." in proc.stdout and "Re-initialised" not in proc.stdout
    # in process, what the hook leaves before the first step: the checkpoint's classifier on resume
    cfg = build_config(CRT, common + ["SOLVER.MAX_ITER", "4"])
    cfg.freeze()
    trainer = _trainer_cls()(cfg)
    (tmp_path / "last_checkpoint").write_text("model_0000001.pth")
    trainer.resume_or_load(resume=True)
    trainer.before_train()
    assert torch.equal(trainer.model.roi_heads.box_predictor.cls_score.weight, ckpt[key])


# ------------------------------------------------------------------ CUDA (skipped without a GPU)


@cuda
@pytest.mark.parametrize("cls_loss", ["balanced_softmax", "balanced_sigmoid"])
def test_cuda_meta_step_equals_cpu(cls_loss):
    cfg = balms_cfg(cls_loss, "images")
    results = {}
    for device in ("cpu", "cuda"):
        cfg.MODEL.DEVICE = device
        model, optimizer = build(cfg)
        to = lambda batch: [dict(d, image=d["image"].to(device), instances=d["instances"].to(device)) for d in batch]  # noqa: E731
        with EventStorage() as storage:
            hook = hooked(cfg, model, optimizer, storage, [to(tiny_detection_inputs(K, seed=5))] * 3)
            train_step(model, optimizer, hook, to(tiny_detection_inputs(K, seed=1)), 0, 7, 8)
        r = model.roi_heads.box_predictor.meta_reweighter
        assert r.theta.device.type == device and r.last_hypergrad.device.type == device
        results[device] = r.last_hypergrad.cpu()
    assert torch.allclose(results["cpu"], results["cuda"], rtol=1e-3, atol=1e-6)


@cuda
def test_cuda_amp_training_with_the_meta_reweighter(tmp_path):
    from detectron2.engine import AMPTrainer

    cfg = balms_cfg("balanced_softmax", "bank")
    cfg.MODEL.DEVICE = "cuda"
    cfg.OUTPUT_DIR = str(tmp_path)  # after_train writes meta_weights.* there
    model, optimizer = build(cfg)

    def data():
        i = 0
        while True:
            yield [dict(d, image=d["image"].cuda(), instances=d["instances"].to("cuda"))
                   for d in tiny_detection_inputs(K, seed=i)]
            i += 1

    trainer = AMPTrainer(model, data(), optimizer)
    trainer.register_hooks([MetaReweighterHook(cfg, meta_loader=[])])
    trainer.train(0, 5)
    r = model.roi_heads.box_predictor.meta_reweighter
    assert r.adam_step.item() == 4 and torch.isfinite(r.theta).all() and r.theta.abs().sum() > 0
