"""Which recipe each end-to-end row follows, and the authors' settings no row reproduces, as data; the
sources are ``published.SOURCES``."""

SHARED = ("the shared recipe: SGD LR 0.02 at batch 8, 1,200 iterations, LR x0.1 at 900 and 1,100, linear "
          "warm-up 100 iterations at factor 1e-3, no gradient clipping, 128 ROIs per image")
# row -> (its recipe, sources)
RECIPES = {
    "softmax": ("shared (detectron2's stock head)", ()),
    "balanced_softmax": ("shared", ()),
    "sigmoid_rfs": ("shared, with the official stage 1's classifier bias at prior probability 0.001 "
                    "(MODEL.BALMS.SIGMOID_PRIOR_PROB; the official cfg.py)", ("S5",)),
    "seesaw": ("shared; the authors' own differs only in settings of the list below (no clipping; warm-up 500 "
               "of ~150k iterations, ~4 of 1,200)", ("S2",)),
    "eqlv2": ("shared; the authors' own differs only in settings of the list below (no clipping; warm-up 500 "
              "of at least 75k iterations, at most 8 of 1,200)", ("S8",)),
    "ecm": ("shared (no clipping, warm-up 100 at 1e-3)", ()),
    "ecm_authors": ("ECM's (configs/effective_class_margin_loss/r50_ecm_1x.py): gradient clipping at L2 norm 5 "
                    "over the whole model, as mmcv's `grad_clip=dict(max_norm=5, norm_type=2)` clips "
                    "(mmcv/runner/hooks/optimizer.py; here SOLVER.CLIP_GRADIENTS.CLIP_TYPE full_model, "
                    "balms_det/solver.py, since detectron2's `norm` type clips each parameter on its own, "
                    "detectron2/solver/build.py); linear warm-up 10,000 iterations at ratio 1e-4, of ~90k "
                    "(12 RFS epochs at batch 16; the total is written in no config, at least ~75k), scaled to "
                    "133 of 1,200 at factor 1e-4", ("S1", "S6", "S3", "S2")),
    "federated": ("shared", ()),
    "federated_authors": ("CenterNet2's (configs/LVIS_CenterNet2_R50_Fed_1x.yaml, Base-CenterNet2.yaml): "
                          "CLIP_GRADIENTS enabled with detectron2's defaults, value clipping at 1.0 "
                          "(detectron2/config/defaults.py); warm-up 4,000 of 90,000 iterations at factor "
                          "2.5e-4, scaled to 53 of 1,200; the classifier's bias at prior probability 0.01 "
                          "(ROI_BOX_HEAD.PRIOR_PROB in centernet/modeling/roi_heads/custom_fast_rcnn.py; here "
                          "MODEL.BALMS.FEDERATED.PRIOR_PROB)", ("S4", "S3")),
}
# row with its authors' recipe -> its shared-recipe twin (the same loss, classifier and sampler)
TWINS = {"ecm_authors": "ecm", "federated_authors": "federated"}
# (setting, the authors', here, sources): differences from every official recipe that no row reproduces
NOT_REPRODUCED = [
    ("batch and LR", "16 images per iteration at LR 0.02 (linear scaling: 0.01 at batch 8)",
     "8 at 0.02 for every row", ("S1", "S3", "S4", "S5")),
    ("ROIs per image", "512 at positive fraction 0.25 (ECM's fg_bg_ratio 6.3313 was measured under it)",
     "128 at 0.25", ("S1", "S3")),
    ("mask head", "a normed (cosine, T 20) class-specific mask predictor for ECM and Seesaw's normed-mask "
     "variants", "the stock mask head", ("S1", "S2")),
    ("schedule length and LR steps", "12 or 24 epochs (mmdet: at least ~75k iterations at batch 16, more with "
     "RFS), 90k (detectron2 LVIS v0.5, CenterNet2) or 180k (detectron2 LVIS v1) iterations; steps at 66.7 % and "
     "91.7 % (mmdet) or 66.7 % and 88.9 % (detectron2), from ImageNet weights",
     "1,200 iterations from scratch (ResNet-18), steps at 75 % and 91.7 %", ("S1", "S3", "S4")),
    ("short warm-ups", "Seesaw 500, EQLv2 500, BALMS 1,000 iterations (4, at most 8, 13 of 1,200 scaled)",
     "100 iterations", ("S2", "S8", "S5")),
    ("test", "score threshold 1e-4 (the federated loss in CenterNet2: 0.02), 300 detections per image",
     "1e-4 and 100 detections for every row", ("S1", "S3", "S4")),
    ("input", "multi-scale training, (1333, 640-800)", "one size, 160", ("S1",)),
]
