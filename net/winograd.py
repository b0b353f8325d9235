"""3x3 stride-1 convolutions by Winograd's minimal filtering F(4x4, 3x3), in graph ops.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016), section 4: each
4 x 4 output tile of a 3x3 convolution is A^T [(G g G^T) * (B^T d B)] A, where d is the 6 x 6
input tile (tiles overlap by 2 pixels), g the 3 x 3 kernel of one input/output channel pair, and
`*` the element-wise product. Summed over input channels, the element-wise products become 36
independent matrix products [tiles, in_depth] x [in_depth, out_depth]: 36 multiply-adds per
tile and channel pair instead of the direct convolution's 16 x 9 = 144, so 4x fewer (the
transforms cost additions that grow with tiles x depth, not with depth x depth).

Why: on CPUs where oneDNN runs the direct convolutions at the machine's float32 peak (a 2-core
Zen 5: 210-220 G multiply-adds/s, bench/conv_peak.py), fewer multiplies is the only way left to
a faster float32 forward pass; SSD300-VGG16's forward then runs 1.3-1.5x faster (README,
"SSD300-VGG16 against torchvision's ssd300_vgg16"). With TensorFlow's default (Eigen) CPU kernels the transposes and batched products are
slower than its direct convolution, so kernel_support.choose_conv_algorithm uses this only
where oneDNN is on, for float32 inference graphs in NHWC (GPUs: cuDNN chooses its own).

Numerics: the transforms' coefficients (up to 8 and 1/24) cost precision: SSD300's outputs
stay within 1e-4 of their range of the direct convolution's in float32
(tests/test_winograd.py), too much loss for bfloat16's 8-bit mantissa, which is refused.
"""

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1

# F(4x4, 3x3) with interpolation points 0, 1, -1, 2, -2 and infinity (Lavin & Gray, eq. 7's
# construction): input transform B^T [6, 6], kernel transform G [6, 3], output transform
# A^T [4, 6].
_INPUT_TRANSFORM = np.array([[4, 0, -5, 0, 1, 0],
                             [0, -4, -4, 1, 1, 0],
                             [0, 4, -4, -1, 1, 0],
                             [0, -2, -1, 2, 1, 0],
                             [0, 2, -1, -2, 1, 0],
                             [0, 4, 0, -5, 0, 1]], np.float64)
_KERNEL_TRANSFORM = np.array([[1 / 4, 0, 0],
                              [-1 / 6, -1 / 6, -1 / 6],
                              [-1 / 6, 1 / 6, -1 / 6],
                              [1 / 24, 1 / 12, 1 / 6],
                              [1 / 24, -1 / 12, 1 / 6],
                              [0, 0, 1]], np.float64)
_OUTPUT_TRANSFORM = np.array([[1, 1, 1, 1, 1, 0],
                              [0, 1, -1, 2, -2, 0],
                              [0, 1, 1, 4, 4, 0],
                              [0, 1, -1, 8, -8, 1]], np.float64)
TILE = 4  # output pixels per tile side
_INPUT_TILE = TILE + 2  # input pixels per tile side (a 3x3 kernel reads one more on each side)

# The two-dimensional transforms as single matrices over the flattened tile (row-major), so
# each is one matrix product over every tile and channel at once: vec(B^T d B) = (B^T (x) B^T)
# vec(d) for a row-major vec.
_INPUT_TRANSFORM_2D = np.kron(_INPUT_TRANSFORM, _INPUT_TRANSFORM).astype(np.float32)  # [36, 36]
_KERNEL_TRANSFORM_2D = np.kron(_KERNEL_TRANSFORM, _KERNEL_TRANSFORM).astype(np.float32)  # [36, 9]
_OUTPUT_TRANSFORM_2D = np.kron(_OUTPUT_TRANSFORM, _OUTPUT_TRANSFORM).astype(np.float32)  # [16, 36]

# Which layers gain. SSD300-VGG16 on a 2-core Zen 4 with oneDNN (2026-12-04), two runs each:
# training at batch 8 (`bench/train_step.py --steps=4 --warmup=1 --skip_pipeline
# --winograd_min_depths=IN,OUT`) 1.62-1.67 images/s with layers of 128+ -> 256+ channels,
# 1.84 with 128+ -> 128+, 1.91-1.94 with 64+ -> 128+ (kept), 1.86 with 64+ -> 64+ (one run);
# forward at batch 8 (`bench/forward.py --winograd_min_depths=IN,OUT`) 5.43-5.50 with 128+ ->
# 256+, 5.84-5.86 with 64+ -> 128+; the thin VGG16 of configs/quick.flags in float32 trains at
# 31.1-33.0 against 35.2-35.7 images/s (`bench/train_step.py --flagfile=configs/quick.flags
# --compute_dtype=float32 --steps=10 --skip_pipeline`). On a 2-core Zen 5 (forward, images/s
# at batch 1 / 8, 2026-12-03): 128+ -> 256+ 8.9-9.1 / 10.2-10.3; 128+ -> 128+ 7.5-8.7 /
# 8.6-10.1; 64+ -> 128+ 9.4 / 10.2 (one run); all direct 7.0 / 7.3. Single layers there
# (`bench/conv_peak.py --layers=conv2_1,conv2_2,... [--conv_algorithm=winograd]`, ms at batch
# 8, direct / Winograd) made conv2_1 (64 -> 128) 62.5 / 74.4 and conv2_2 117.6 / 127.7 slower
# alone, but the whole network does not lose with them. Thinner layers (conv1_2, 64 -> 64) do
# too few multiplies per pixel to pay for the transforms' copies. Outputs under 8 x 8 pixels
# would waste most of their 4 x 4 tiles on padding. Not measured on an AVX2 CPU (oneDNN's
# inference there takes Winograd too).
MIN_IN_DEPTH = 64
MIN_OUT_DEPTH = 128
MIN_OUTPUT_SIDE = 8


def applies(kernel_shape, output_size, stride, dilation, dtype):
  """True if a convolution is one this module computes, and one where it is faster.

  Args:
    kernel_shape: [kernel_h, kernel_w, in_depth, out_depth] (static ints).
    output_size: (height, width) of the output, ints or None when unknown.
    stride, dilation: ints.
    dtype: the convolution's tf.DType.
  """
  kernel_h, kernel_w, in_depth, out_depth = kernel_shape
  return (kernel_h == 3 and kernel_w == 3 and stride == 1 and dilation == 1
          and dtype == tf.float32 and in_depth >= MIN_IN_DEPTH and out_depth >= MIN_OUT_DEPTH
          and None not in output_size and min(output_size) >= MIN_OUTPUT_SIDE)


def transform_kernel(kernel):
  """G g G^T of every channel pair: float32 [3, 3, in_depth, out_depth] -> [36, in, out]."""
  _, _, in_depth, out_depth = kernel.shape.as_list()
  flat = tf.reshape(kernel, [9, in_depth * out_depth])
  return tf.reshape(tf.matmul(_KERNEL_TRANSFORM_2D, flat), [36, in_depth, out_depth])


def cached_transformed_kernel(kernel, name='winograd_weights'):
  """transform_kernel(kernel) held in a local variable, computed once per session.

  Inference graphs read the kernel's transform from this copy instead of recomputing it every
  run (at batch 1 the transforms of VGG16's kernels cost about a tenth of the forward pass).
  The copy lives in LOCAL_VARIABLES: checkpoints never hold it, and it is (re)computed from
  the restored kernel by the local-variable initializer, which tf.estimator's Scaffold and
  the SavedModel's main op (net/export.py) run after restoring. A session that skips it fails
  with FailedPreconditionError naming this variable rather than computing with stale values.

  Args:
    kernel: float32 [3, 3, in_depth, out_depth] tensor (the read kernel variable).
    name: variable name within the current variable scope.

  Returns:
    float32 [36, in_depth, out_depth] tensor.
  """
  transformed = transform_kernel(kernel)
  cache = tf1.get_variable(name, initializer=transformed, trainable=False,
                           collections=[tf1.GraphKeys.LOCAL_VARIABLES])
  return tf.identity(cache)


def _tile_pixel_indices(tiles_h, tiles_w, padded_w):
  """int [36, 1, tiles_h * tiles_w]: row-major index, in one padded image of width padded_w,
  of pixel (r, c) of each 6 x 6 tile (tiles at stride 4)."""
  offsets = np.arange(_INPUT_TILE)
  rows = TILE * np.arange(tiles_h)[None, :, None] + offsets[:, None, None]  # [6, th, 1]
  cols = TILE * np.arange(tiles_w)[None, None, :] + offsets[:, None, None]  # [6, 1, tw]
  index = rows[:, None] * padded_w + cols[None, :]  # [6 (r), 6 (c), th, tw]
  return index.reshape(_INPUT_TILE * _INPUT_TILE, 1, tiles_h * tiles_w).astype(np.int32)


def _output_pixel_indices(out_h, out_w, tiles_w):
  """(int [1, out_h * out_w] position of each output pixel within its tile, int [1, out_h *
  out_w] index of its tile within one image): rows of the output transform's result."""
  y, x = np.mgrid[0:out_h, 0:out_w]
  in_tile = (y % TILE) * TILE + x % TILE
  tile = (y // TILE) * tiles_w + x // TILE
  return in_tile.reshape(1, -1).astype(np.int32), tile.reshape(1, -1).astype(np.int32)


def conv3x3(inputs, transformed_kernel, padding):
  """A 3x3 stride-1 convolution of NHWC inputs with `padding` zero pixels on every side.

  The overlapping tiles are gathered in one op from the padded input, and the output pixels in
  one op from the output transform's rows (which also drops the pixels of the last tiles that
  fall outside the output): two copies instead of slices, concatenations and transposes.

  Args:
    inputs: float32 [batch, height, width, in_depth], height and width static.
    transformed_kernel: float32 [36, in_depth, out_depth] from transform_kernel (or its cache).
    padding: 0 ('VALID') or 1 ('SAME', Caffe's pad 1).

  Returns:
    float32 [batch, out_h, out_w, out_depth], out = size + 2 * padding - 2: equal to
    tf.nn.conv2d of the padded inputs, 'VALID', up to float32 rounding (module docstring).
  """
  _, height, width, in_depth = inputs.shape.as_list()
  out_depth = transformed_kernel.shape.as_list()[-1]
  out_h, out_w = height + 2 * padding - 2, width + 2 * padding - 2
  tiles_h, tiles_w = -(-out_h // TILE), -(-out_w // TILE)
  tiles_per_image = tiles_h * tiles_w
  padded_h, padded_w = TILE * tiles_h + 2, TILE * tiles_w + 2
  batch = tf.shape(inputs)[0]
  num_tiles = batch * tiles_per_image
  # The layer's own padding, then zeros so that the last tiles are whole.
  padded = tf.pad(inputs, [[0, 0], [padding, padded_h - height - padding],
                           [padding, padded_w - width - padding], [0, 0]])
  image_offsets = tf.range(batch)[None, :, None] * (padded_h * padded_w)
  tile_pixels = tf.reshape(_tile_pixel_indices(tiles_h, tiles_w, padded_w) + image_offsets, [-1])
  tiles = tf.gather(tf.reshape(padded, [-1, in_depth]), tile_pixels)  # [36 * tiles, in]
  transformed = tf.matmul(_INPUT_TRANSFORM_2D, tf.reshape(tiles, [36, -1]))
  products = tf.matmul(tf.reshape(transformed, [36, num_tiles, in_depth]), transformed_kernel)
  outputs = tf.matmul(_OUTPUT_TRANSFORM_2D, tf.reshape(products, [36, -1]))  # [16, tiles * out]
  in_tile, tile = _output_pixel_indices(out_h, out_w, tiles_w)
  rows = in_tile * num_tiles + tf.range(batch)[:, None] * tiles_per_image + tile
  outputs = tf.gather(tf.reshape(outputs, [-1, out_depth]), tf.reshape(rows, [-1]))
  return tf.reshape(outputs, [batch, out_h, out_w, out_depth])
