"""Default boxes (anchors) of SSD, in the order of the authors' Caffe PriorBox layers.

Every anchor is float32 ``[ymin, xmin, ymax, xmax]`` normalized to [0, 1] by the (square)
model input size, like every other box in the graph (see ``utility/boxes.py``).

Order (Caffe ``PriorBoxLayer``, and the order in which ``net/`` flattens its head outputs):
layers in order, then the feature-map row y, then the column x, then per location:

  1. square of side ``min_size``;
  2. square of side ``sqrt(min_size * max_size)`` (the paper's extra box of scale s'_k);
  3. for each aspect ratio r: ``(w, h) = (min_size * sqrt(r), min_size / sqrt(r))`` followed by
     its 1/r twin ``(w, h) = (min_size / sqrt(r), min_size * sqrt(r))``.

So a location has ``2 + 2 * len(aspect_ratios)`` boxes. The centre of location (y, x) is
``((y + 0.5) * step / image_size, (x + 0.5) * step / image_size)``. The SSD300 preset gives
8,732 anchors and the SSD512 preset 24,564.

Command line (writes the anchors of a preset, optionally draws one layer):

  python -m utility.anchors --preset=ssd300 --output=anchors.npy [--clip]
      [--draw=anchors.png --layer=K]
"""

import dataclasses
import io
import math
import os
import sys

if __name__ == '__main__' and not __package__:
  # `python utility/anchors.py`: make `utility` importable from the repo root.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from utility import boxes as box_ops  # noqa: E402
from utility import file_io  # noqa: E402


@dataclasses.dataclass(frozen=True)
class AnchorLayer:
  """Default-box settings of one source feature map (one Caffe PriorBox layer).

  Attributes:
    feature_size: side of the square feature map, in cells (38 for SSD300 conv4_3).
    step: distance between neighbouring anchor centres, in input pixels (8 for conv4_3).
    min_size: side of the small square box, in input pixels.
    max_size: the big square box has side sqrt(min_size * max_size), in input pixels.
    aspect_ratios: width / height ratios r > 0, r != 1; each adds a box and its 1/r twin.
  """
  feature_size: int
  step: float
  min_size: float
  max_size: float
  aspect_ratios: tuple = (2.0,)

  def __post_init__(self):
    if int(self.feature_size) != self.feature_size or self.feature_size < 1:
      raise ValueError('AnchorLayer.feature_size must be a positive integer, got %r.'
                       % (self.feature_size,))
    if self.step <= 0 or self.min_size <= 0 or self.max_size <= 0:
      raise ValueError('AnchorLayer step, min_size and max_size must be positive pixels, got '
                       '%r, %r, %r.' % (self.step, self.min_size, self.max_size))
    object.__setattr__(self, 'feature_size', int(self.feature_size))
    ratios = tuple(float(r) for r in self.aspect_ratios)
    if any(r <= 0 or r == 1.0 for r in ratios):
      raise ValueError('AnchorLayer.aspect_ratios must be > 0 and != 1 (ratio 1 is the min '
                       'square, always present), got %r.' % (self.aspect_ratios,))
    object.__setattr__(self, 'aspect_ratios', ratios)


SSD300_LAYERS = (  # Caffe SSD300 VOC priors: conv4_3, fc7, conv8_2, conv9_2, conv10_2, conv11_2
    AnchorLayer(38, 8, 30, 60, (2.0,)),
    AnchorLayer(19, 16, 60, 111, (2.0, 3.0)),
    AnchorLayer(10, 32, 111, 162, (2.0, 3.0)),
    AnchorLayer(5, 64, 162, 213, (2.0, 3.0)),
    AnchorLayer(3, 100, 213, 264, (2.0,)),
    AnchorLayer(1, 300, 264, 315, (2.0,)),
)

SSD512_LAYERS = (  # Caffe SSD512 VOC priors: as SSD300 plus conv12_2
    AnchorLayer(64, 8, 35.84, 76.8, (2.0,)),
    AnchorLayer(32, 16, 76.8, 153.6, (2.0, 3.0)),
    AnchorLayer(16, 32, 153.6, 230.4, (2.0, 3.0)),
    AnchorLayer(8, 64, 230.4, 307.2, (2.0, 3.0)),
    AnchorLayer(4, 128, 307.2, 384.0, (2.0, 3.0)),
    AnchorLayer(2, 256, 384.0, 460.8, (2.0,)),
    AnchorLayer(1, 512, 460.8, 537.6, (2.0,)),
)

# COCO priors (paper sec. 3.4: smaller default boxes; the authors' ssd_coco.py): SSD300 spreads
# min_ratio 15 .. max_ratio 90 % of 300 in steps of 18 % with 7 % (min) / 15 % (max) on conv4_3;
# SSD512 10 .. 90 % of 512 in steps of 16 % with 4 % / 10 % on conv4_3.
SSD300_COCO_LAYERS = (
    AnchorLayer(38, 8, 21, 45, (2.0,)),
    AnchorLayer(19, 16, 45, 99, (2.0, 3.0)),
    AnchorLayer(10, 32, 99, 153, (2.0, 3.0)),
    AnchorLayer(5, 64, 153, 207, (2.0, 3.0)),
    AnchorLayer(3, 100, 207, 261, (2.0,)),
    AnchorLayer(1, 300, 261, 315, (2.0,)),
)

SSD512_COCO_LAYERS = (
    AnchorLayer(64, 8, 20.48, 51.2, (2.0,)),
    AnchorLayer(32, 16, 51.2, 133.12, (2.0, 3.0)),
    AnchorLayer(16, 32, 133.12, 215.04, (2.0, 3.0)),
    AnchorLayer(8, 64, 215.04, 296.96, (2.0, 3.0)),
    AnchorLayer(4, 128, 296.96, 378.88, (2.0, 3.0)),
    AnchorLayer(2, 256, 378.88, 460.8, (2.0,)),
    AnchorLayer(1, 512, 460.8, 542.72, (2.0,)),
)

PRESETS = {  # name -> (image_size in pixels, anchor layers)
    'ssd300': (300, SSD300_LAYERS),
    'ssd512': (512, SSD512_LAYERS),
    'ssd300_coco': (300, SSD300_COCO_LAYERS),
    'ssd512_coco': (512, SSD512_COCO_LAYERS),
}


def scaled_layers(feature_sizes, image_size, min_scale=0.2, max_scale=0.9, first_scale=None,
                  aspect_ratios=(2.0,)):
  """Anchor layers for a custom network, with the paper's linear scales (Sec. 2.2, eq. 4).

  With m layers the scales are ``s_k = min_scale + (max_scale - min_scale) * k / (m - 1)``,
  k = 0..m-1 (a single layer gets ``min_scale``). Layer k gets ``min_size = s_k * image_size``,
  ``max_size = s_{k+1} * image_size`` (so its big square is the paper's s'_k = sqrt(s_k s_{k+1})),
  with the last s_m extrapolated one linear step past max_scale (one layer: s_1 = max_scale), and
  ``step = image_size / feature_size``.

  ``first_scale`` (e.g. 0.1) gives the first layer that scale, with max_size = min_scale, and
  spreads the others as above: the Caffe/TF-port convention for the conv4_3 source. With
  feature sizes (38, 19, 10, 5, 3, 1), 0.2, 0.9 and first_scale=0.1 the scales are the TF port's
  0.1, 0.2, 0.375, 0.55, 0.725, 0.9. (The SSD300/SSD512 presets are the exact Caffe numbers
  instead, whose steps and sizes are rounded.)

  Args:
    feature_sizes: sequence of square feature-map sides, first (finest) layer first.
    image_size: square model input size in pixels.
    min_scale, max_scale: box scales of the first and last layer, fractions of image_size.
    first_scale: optional smaller scale for the first layer, see above.
    aspect_ratios: one tuple of ratios for every layer, or a sequence of tuples, one per layer.

  Returns:
    A tuple of AnchorLayer.

  Raises:
    ValueError: on no layers, scales outside (0, ...] or in the wrong order, or a per-layer
      aspect-ratio list of the wrong length.
  """
  sizes = [int(f) for f in feature_sizes]
  if not sizes:
    raise ValueError('scaled_layers needs at least one feature size.')
  if not 0 < min_scale <= max_scale or (first_scale is not None and not 0 < first_scale):
    raise ValueError('scaled_layers needs 0 < first_scale, 0 < min_scale <= max_scale; got %r, '
                     '%r, %r.' % (first_scale, min_scale, max_scale))
  ratios = _ratios_per_layer(aspect_ratios, len(sizes))
  num_spread = len(sizes) - (first_scale is not None)
  if num_spread == 0:
    scales = [first_scale, min_scale]
  else:
    delta = (max_scale - min_scale) / (num_spread - 1) if num_spread > 1 else 0.0
    scales = [min_scale + delta * k for k in range(num_spread)]
    scales.append(max_scale + delta if num_spread > 1 else max_scale)
    if first_scale is not None:
      scales.insert(0, first_scale)
  return tuple(
      AnchorLayer(size, image_size / size, scales[k] * image_size, scales[k + 1] * image_size,
                  ratios[k])
      for k, size in enumerate(sizes))


def _ratios_per_layer(aspect_ratios, num_layers):
  """One tuple of ratios for all layers, or one tuple per layer -> list of tuples."""
  aspect_ratios = tuple(aspect_ratios)
  if all(isinstance(r, (int, float)) for r in aspect_ratios):
    return [aspect_ratios] * num_layers
  if len(aspect_ratios) != num_layers:
    raise ValueError('scaled_layers got %d aspect-ratio tuples for %d feature sizes; give one '
                     'per layer or a single tuple for all.' % (len(aspect_ratios), num_layers))
  return [tuple(r) for r in aspect_ratios]


def location_box_sizes(layer):
  """Box sizes of one location, in the Caffe order of the module docstring.

  Args:
    layer: an AnchorLayer.

  Returns:
    A list of (height, width) pairs in input pixels, 2 + 2 * len(aspect_ratios) long.
  """
  big = math.sqrt(layer.min_size * layer.max_size)
  sizes = [(layer.min_size, layer.min_size), (big, big)]
  for ratio in layer.aspect_ratios:
    root = math.sqrt(ratio)
    sizes.append((layer.min_size / root, layer.min_size * root))  # wide: w = min * sqrt(r)
    sizes.append((layer.min_size * root, layer.min_size / root))  # its tall 1/r twin
  return sizes


def num_anchors_per_location(layers):
  """Boxes per feature-map cell of each layer, 2 + 2 * len(aspect_ratios) (SSD300: 4,6,6,6,4,4)."""
  return [2 + 2 * len(layer.aspect_ratios) for layer in layers]


def num_anchors(layers):
  """Total number of anchors of all layers (SSD300: 8732, SSD512: 24564), a Python int."""
  return sum(layer.feature_size ** 2 * k
             for layer, k in zip(layers, num_anchors_per_location(layers)))


def generate_anchors(layers, image_size, clip=False):
  """Default boxes of all layers, as TF ops.

  Args:
    layers: sequence of AnchorLayer (e.g. SSD300_LAYERS).
    image_size: square model input size in pixels (300 for SSD300).
    clip: clip every box to [0, 1] (off in Caffe SSD300, on in ssd.pytorch).

  Returns:
    float32 [num_anchors, 4] normalized [ymin, xmin, ymax, xmax], in the order of the module
    docstring (layer, y, x, box within location).
  """
  with tf.name_scope('generate_anchors'):
    # Computed in float64 and cast once: the float32 result is then the correctly rounded value.
    anchors = tf.cast(tf.concat([_layer_anchors(layer, image_size) for layer in layers], 0),
                      tf.float32)
    return box_ops.clip_to_window(anchors) if clip else anchors


def _layer_anchors(layer, image_size):
  """float64 [feature_size**2 * k, 4] anchors of one layer (k boxes per location)."""
  centres = (tf.range(layer.feature_size, dtype=tf.float64) + 0.5) * layer.step / image_size
  centre_y, centre_x = tf.meshgrid(centres, centres, indexing='ij')  # [f, f] each, y major
  heights, widths = zip(*location_box_sizes(layer))
  half_h = tf.constant(heights, tf.float64) / (2.0 * image_size)  # [k]
  half_w = tf.constant(widths, tf.float64) / (2.0 * image_size)
  centre_y, centre_x = centre_y[:, :, None], centre_x[:, :, None]  # [f, f, 1]
  corners = tf.stack([centre_y - half_h, centre_x - half_w, centre_y + half_h, centre_x + half_w],
                     axis=-1)  # [f, f, k, 4]
  return tf.reshape(corners, [-1, 4])


def anchors_numpy(layers, image_size, clip=False):
  """generate_anchors evaluated in a private graph: float32 numpy [num_anchors, 4] (for tools)."""
  with tf.Graph().as_default():
    anchors = generate_anchors(layers, image_size, clip)
    with tf.compat.v1.Session() as sess:
      return sess.run(anchors)


def save_anchors(path, anchors):
  """Writes float32 [num_anchors, 4] to a .npy file atomically (temp file, then os.replace)."""
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise ValueError('--output=%s: folder %s does not exist; create it first.' % (path, directory))
  buffer = io.BytesIO()
  np.save(buffer, np.asarray(anchors, np.float32))
  file_io.atomic_write(path, buffer.getvalue())


# Colours (BGR) per box index within a location: min square, big square, then ratio twins.
_COLOURS = ((0, 0, 255), (0, 160, 0), (255, 0, 0), (255, 0, 255), (0, 140, 255), (160, 160, 0))


def draw_layer(layers, image_size, layer_index, anchors):
  """Draws one layer's boxes at three locations (top-left, centre, bottom-right cell).

  Args:
    layers: the AnchorLayer sequence that produced ``anchors``.
    image_size: square model input size in pixels (the canvas size).
    layer_index: which layer to draw, 0-based.
    anchors: numpy float32 [num_anchors, 4] from generate_anchors(layers, image_size).

  Returns:
    uint8 BGR image [image_size + legend, image_size, 3]: white canvas of the model input size
    with the boxes, every anchor centre of the layer as a grey dot, and a legend below.

  Raises:
    ValueError: if layer_index is out of range.
  """
  import cv2  # only the drawing tool needs OpenCV
  if not 0 <= layer_index < len(layers):
    raise ValueError('--layer=%d is out of range: this preset has layers 0..%d.'
                     % (layer_index, len(layers) - 1))
  per_location = num_anchors_per_location(layers)
  offset = sum(l.feature_size ** 2 * k for l, k in zip(layers[:layer_index], per_location))
  layer, k = layers[layer_index], per_location[layer_index]
  size = layer.feature_size
  layer_boxes = anchors[offset:offset + size * size * k].reshape([size, size, k, 4]) * image_size
  legend_height = 36
  canvas = np.full([image_size + legend_height, image_size, 3], 255, np.uint8)
  for y in range(size):
    for x in range(size):
      centre = layer_boxes[y, x, 0]
      cv2.circle(canvas, (int(round((centre[1] + centre[3]) / 2)),
                          int(round((centre[0] + centre[2]) / 2))), 1, (170, 170, 170), -1)
  for y, x in sorted({(0, 0), (size // 2, size // 2), (size - 1, size - 1)}):
    for index, (ymin, xmin, ymax, xmax) in enumerate(layer_boxes[y, x]):
      cv2.rectangle(canvas, (int(round(xmin)), int(round(ymin))),
                    (int(round(xmax)), int(round(ymax))), _COLOURS[index % len(_COLOURS)], 1)
  canvas[image_size:] = 235
  lines = ('layer %d: %dx%d step %g min %g max %g ratios %s'
           % (layer_index, size, size, layer.step, layer.min_size, layer.max_size,
              ','.join('%g' % r for r in layer.aspect_ratios)),
           'red min, green sqrt(min*max), then r, 1/r pairs')
  for row, text in enumerate(lines):
    cv2.putText(canvas, text, (3, image_size + 14 + 16 * row), cv2.FONT_HERSHEY_SIMPLEX,
                0.32 * image_size / 300, (0, 0, 0), 1, cv2.LINE_AA)
  return canvas


def save_image(path, image):
  """Writes a BGR uint8 image as PNG atomically."""
  import cv2
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise ValueError('--draw=%s: folder %s does not exist; create it first.' % (path, directory))
  ok, encoded = cv2.imencode('.png', image)
  if not ok:
    raise ValueError('--draw=%s: OpenCV could not encode the drawing as PNG.' % path)
  file_io.atomic_write(path, encoded.tobytes())


def _define_flags():
  """Flags exist only when run as a script, so importing this module defines none."""
  from absl import flags
  flags.DEFINE_enum('preset', 'ssd300', sorted(PRESETS), 'Anchor preset.')
  flags.DEFINE_string('output', None, 'Where to write the float32 [num_anchors, 4] .npy.')
  flags.DEFINE_bool('clip', False, 'Clip the anchors to [0, 1].')
  flags.DEFINE_string('draw', None, 'Optional PNG showing one layer of anchors.')
  flags.DEFINE_integer('layer', 0, 'Layer to draw with --draw (0-based).')


def main(argv):
  from absl import flags
  flags_values = flags.FLAGS
  if len(argv) > 1:
    sys.exit('Error: unexpected arguments %s; options are --flags.' % ' '.join(argv[1:]))
  if not flags_values.output and not flags_values.draw:
    sys.exit('Error: nothing to do; give --output=anchors.npy and/or --draw=anchors.png.')
  image_size, layers = PRESETS[flags_values.preset]
  if flags_values.draw and not 0 <= flags_values.layer < len(layers):
    sys.exit('Error: --layer=%d is out of range: --preset=%s has layers 0..%d.'
             % (flags_values.layer, flags_values.preset, len(layers) - 1))
  anchors = anchors_numpy(layers, image_size, clip=flags_values.clip)
  if flags_values.draw:
    try:
      drawing = draw_layer(layers, image_size, flags_values.layer, anchors)
      save_image(flags_values.draw, drawing)
    except ValueError as error:  # a bad --layer or --draw: say so without a traceback
      sys.exit('Error: %s' % error)
    print('Wrote %s (layer %d of %s).' % (flags_values.draw, flags_values.layer,
                                            flags_values.preset))
  if flags_values.output:
    try:
      save_anchors(flags_values.output, anchors)
    except ValueError as error:
      sys.exit('Error: %s' % error)
    print('Wrote %s: float32 %s, %s%s.' % (flags_values.output, list(anchors.shape),
                                            flags_values.preset,
                                            ', clipped' if flags_values.clip else ''))


if __name__ == '__main__':
  from absl import app
  _define_flags()
  app.run(main)
