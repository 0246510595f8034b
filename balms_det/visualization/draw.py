"""Pictures of detections and ground truth: boxes, masks, labels (class name, frequency group, score)
coloured by LVIS frequency group, with a legend. numpy, OpenCV and Pillow only (no torch).

Small images are drawn on a canvas scaled up (``min_size``: the longer side of each panel, in pixels), and
the font size follows the panel's size, so that the labels of a 160 px image and of a 1,000 px one read
alike. Labels are placed by :func:`~.layout.layout_labels`: inside the panel, off each other; a label away
from its object is tied to it by a thin line.
"""
import os

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from balms_eval.per_class import FREQUENCY_GROUPS, GROUP_COLORS

from .layout import layout_labels

__all__ = ["draw_panels", "font_size_for", "panel_scale", "save_png"]

MASK_ALPHA = 0.4  # opacity of a mask's fill
# per class, when there are no groups: none of the groups' red, orange and blue (so no colour says r / c / f)
PALETTE = [(44, 160, 44), (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34),
           (23, 190, 207), (82, 84, 163)]
BACKGROUND = (255, 255, 255)
TEXT = (40, 40, 40)


def _rgb(hex_color):
    return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))


GROUP_RGB = {code: _rgb(c) for code, c in GROUP_COLORS.items()}  # as per_class_ap.png: r red, c orange, f blue


def panel_scale(height, width, min_size=640):
    """Scale of an image of ``height`` x ``width`` pixels in its panel: up to ``min_size`` pixels on the
    longer side for a smaller image, 1 for a larger one."""
    return max(1.0, float(min_size) / max(height, width, 1))


def font_size_for(width, height):
    """Label font size (pixels) for a panel of ``width`` x ``height`` pixels: ~2% of its longer side,
    12 to 40."""
    return int(np.clip(round(0.02 * max(width, height)), 12, 40))


def _font(size, bold=False):
    try:
        import matplotlib

        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size=size)


def _text_width(font, text):
    return font.getlength(text)


def _elide(font, text, width):
    """``text``, cut with "..." at the end to fit ``width`` pixels."""
    if _text_width(font, text) <= width:
        return text
    while text and _text_width(font, text + "...") > width:
        text = text[:-1]
    return text + "..."


def _color(classes, c):
    group = classes.group(c)
    return GROUP_RGB[group] if group else PALETTE[c % len(PALETTE)]


def _ink(color):
    """Black or white text, whichever reads better on ``color``."""
    r, g, b = color
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def _label_text(classes, c, score):
    group = classes.group(c)
    text = classes.name(c) + (f" ({group})" if group else "")
    if score is None:
        return text
    return f"{text} {score:.2f}" if score >= 0.1 else f"{text} {score:.2g}"  # (0.012, not 0.01)


def _draw_masks(canvas, objects, colors, scale, line):
    h, w = canvas.shape[:2]
    for k in reversed(range(len(objects))):  # the first (highest-scoring) object on top
        m = objects.masks[k].astype(np.uint8) * 255
        if scale != 1.0:
            m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
        m = m > 127
        if not m.any():
            continue
        color = np.array(colors[k], np.float64)
        canvas[m] = (canvas[m] * (1 - MASK_ALPHA) + color * MASK_ALPHA).astype(np.uint8)
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, colors[k], line, lineType=cv2.LINE_AA)


def _nearest(box, point):
    return (float(np.clip(point[0], box[0], box[2])), float(np.clip(point[1], box[1], box[3])))


def _render_panel(image, objects, classes, scale, font):
    """The image scaled by ``scale`` with ``objects`` drawn on it (an RGB PIL image), and the number of
    objects left without a label (no room for it off the other labels)."""
    h, w = image.shape[:2]
    size = (int(round(w * scale)), int(round(h * scale)))
    canvas = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR) if scale != 1.0 else image.copy()
    colors = [_color(classes, int(c)) for c in objects.classes]
    line = max(1, int(round(font.size / 9)))
    if objects.masks is not None:
        _draw_masks(canvas, objects, colors, scale, line)
    boxes = objects.boxes * scale
    for k in reversed(range(len(objects))):
        x0, y0, x1, y1 = (int(round(v)) for v in boxes[k])
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colors[k], line, lineType=cv2.LINE_AA)
    panel = Image.fromarray(canvas)
    if not len(objects):
        return panel, 0
    pad = max(2, font.size // 5)
    ascent, descent = font.getmetrics()
    label_h = ascent + descent + pad
    texts = [_elide(font, _label_text(classes, int(c), None if objects.scores is None else float(s)),
                    size[0] - 2 * pad)
             for c, s in zip(objects.classes, objects.scores if objects.scores is not None else [None] * len(objects))]
    sizes = [(_text_width(font, t) + 2 * pad, label_h) for t in texts]
    labels, shown = layout_labels(boxes, sizes, size, gap=1.0)
    draw = ImageDraw.Draw(panel)
    kept = np.flatnonzero(shown)
    for k in kept:  # lines first: no line crosses a label
        lx0, ly0, lx1, ly1 = labels[k]
        box = boxes[k]
        near_label = _nearest((lx0, ly0, lx1, ly1), ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
        near_box = _nearest(box, ((lx0 + lx1) / 2, (ly0 + ly1) / 2))
        if np.hypot(near_label[0] - near_box[0], near_label[1] - near_box[1]) > 2 * line + 1:
            draw.line([near_label, near_box], fill=colors[k], width=max(1, line // 2 + 1))  # tie to its object
    for k in reversed(kept):  # the first label drawn last: on top
        lx0, ly0, lx1, ly1 = labels[k]
        draw.rectangle([lx0, ly0, lx1 - 1, ly1 - 1], fill=colors[k])
        draw.text((lx0 + pad, ly0 + pad / 2), texts[k], font=font, fill=_ink(colors[k]))
    return panel, int(len(objects) - shown.sum())


def _legend_items(classes, note):
    items = []
    if classes.groups is not None:
        present = set(classes.groups)
        items += [(GROUP_RGB[code], f"{label} ({code})") for code, label in FREQUENCY_GROUPS if code in present]
        items.append((None, f"groups: {classes.group_source}" if classes.group_source else "groups"))
    else:
        items.append((None, "colours: per class (no frequency groups known)"))
    if note:
        items.append((None, note))
    return items


def _legend_lines(items, font, width, swatch, gap):
    """The legend's items in lines of at most ``width`` pixels: [[(x, color, text), ...], ...]."""
    lines, line, x = [], [], 0.0
    for color, text in items:
        text = _elide(font, text, width - (swatch + gap if color else 0))
        w = (swatch + gap / 2 if color else 0) + _text_width(font, text)
        if line and x + w > width:
            lines.append(line)
            line, x = [], 0.0
        line.append((x, color, text))
        x += w + 2 * gap
    if line:
        lines.append(line)
    return lines


def draw_panels(image, panels, classes, min_size=640, note=None):
    """One picture: ``image`` in one panel per entry of ``panels``, side by side, each with its objects,
    a title above and a legend below (the colours of the frequency groups, where the groups come from,
    ``note``).

    Args:
        image: (H, W, 3) uint8 RGB, or (H, W) grey.
        panels: [(title, :class:`~.objects.Objects`)], e.g. the predictions and the ground truth.
        classes: a :class:`~.classes.ClassInfo` (names and groups of the contiguous class ids).
        min_size: the longer side of a panel showing a smaller image, in pixels.
        note: a line for the legend (e.g. the score threshold).
    Returns:
        (H', W', 3) uint8 RGB: each panel is the image scaled by :func:`panel_scale`; a title says how many
        objects got no label (no room off the other labels).
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)
    h, w = image.shape[:2]
    scale = panel_scale(h, w, min_size)
    pw, ph = int(round(w * scale)), int(round(h * scale))
    font = _font(font_size_for(pw, ph))
    bold = _font(font_size_for(pw, ph), bold=True)
    gap = font.size
    rendered = [_render_panel(image, objects, classes, scale, font) for _, objects in panels]
    margin = gap // 2
    width = len(panels) * pw + (len(panels) - 1) * gap + 2 * margin
    ascent, descent = font.getmetrics()
    line_h = int((ascent + descent) * 1.3)
    header = line_h + gap // 2
    swatch = ascent
    legend = _legend_lines(_legend_items(classes, note), font, width - 2 * margin, swatch, gap)
    height = header + ph + gap // 2 + len(legend) * line_h + gap // 2
    out = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(out)
    for i, ((title, _), (panel, unlabelled)) in enumerate(zip(panels, rendered)):
        x = margin + i * (pw + gap)
        title = (title or "") + (f" ({unlabelled} without a label: no room)" if unlabelled else "")
        draw.text((x, gap // 4), _elide(bold, title, pw), font=bold, fill=TEXT)
        out.paste(panel, (x, header))
    y = header + ph + gap // 2
    for line in legend:
        for x, color, text in line:
            x = int(x) + margin
            if color is not None:
                top = y + (line_h - swatch) // 2
                draw.rectangle([x, top, x + swatch, top + swatch], fill=color)
                x += swatch + gap // 2
            draw.text((x, y + (line_h - ascent - descent) // 2), text, font=font, fill=TEXT)
        y += line_h
    return np.asarray(out)


def save_png(path, rgb):
    """Write an RGB picture as a PNG (folders made as needed)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(rgb).save(path, format="PNG")
