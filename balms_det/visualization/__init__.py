"""Pictures of a model's detections and of ground truth, labelled with each class's LVIS frequency group
(what ``tools/predict.py`` draws). The drawing needs neither torch nor a model: ``Objects`` holds one
image's boxes, masks, classes and scores as arrays, from a model's ``Instances``, a results file or a
dataset's annotations."""
from .classes import ClassInfo, class_info
from .draw import draw_panels, font_size_for, panel_scale, save_png
from .layout import layout_labels, overlap_area
from .objects import Objects, decode_segmentation

__all__ = ["ClassInfo", "Objects", "class_info", "decode_segmentation", "draw_panels", "font_size_for",
           "layout_labels", "overlap_area", "panel_scale", "save_png"]
