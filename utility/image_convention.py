"""How a backbone wants its input pixels: channel order, mean and standard deviation.

Images are decoded as RGB float32 pixel values in [0, 255]. A backbone's pretrained weights
expect them mapped as

  network_input[..., c] = (pixel[..., c] - mean_rgb[c]) / std_rgb[c], channels in channel_order

e.g. TF-slim / Caffe VGG16: RGB minus the ImageNet mean, no division (std 1); Keras MobileNet
V1/V2: ``pixel / 127.5 - 1`` (mean 127.5, std 127.5). Each backbone module declares one
ImageConvention; training, evaluation, export and the demo all take it from the backbone
(net/backbones.py), never from a constant of their own.
"""

import dataclasses
from typing import Tuple

import numpy as np
import tensorflow as tf

CHANNEL_ORDERS = ('rgb', 'bgr')


@dataclasses.dataclass(frozen=True)
class ImageConvention:
  """Per-channel normalisation of RGB [0, 255] pixels, values given in RGB order."""
  mean_rgb: Tuple[float, float, float]
  std_rgb: Tuple[float, float, float] = (1.0, 1.0, 1.0)
  channel_order: str = 'rgb'

  def __post_init__(self):
    if self.channel_order not in CHANNEL_ORDERS:
      raise ValueError('channel_order must be one of %s; got %r.'
                       % (CHANNEL_ORDERS, self.channel_order))
    if len(self.mean_rgb) != 3:
      raise ValueError('mean_rgb must hold 3 values (R, G, B); got %r.' % (self.mean_rgb,))
    if len(self.std_rgb) != 3 or min(self.std_rgb) <= 0:
      raise ValueError('std_rgb must hold 3 positive values (R, G, B); got %r.' % (self.std_rgb,))

  @property
  def scales(self):
    """True if the convention divides by a standard deviation other than 1."""
    return any(s != 1.0 for s in self.std_rgb)

  def normalize(self, image_rgb):
    """float32 [..., height, width, 3] RGB in [0, 255] -> the network input convention.

    The mean is subtracted as a [width * 3] row: broadcasting a [3] vector over [h, w, 3] is
    about 5x slower on CPU.
    """
    image = tf.cast(image_rgb, tf.float32)
    shape = tf.shape(image)
    width = shape[-2]
    rows = tf.reshape(image, tf.concat([shape[:-2], [width * 3]], 0))
    rows -= tf.tile(tf.constant(self.mean_rgb, tf.float32), [width])
    if self.scales:
      rows *= tf.tile(tf.constant([1.0 / s for s in self.std_rgb], tf.float32), [width])
    image = tf.reshape(rows, shape)
    if self.channel_order == 'bgr':
      image = tf.reverse(image, axis=[-1])
    return image

  def to_rgb_pixels(self, images):
    """Inverse of normalize: float32 [..., 3] network input -> RGB values on the 0-255 scale."""
    images = tf.cast(images, tf.float32)
    if self.channel_order == 'bgr':
      images = tf.reverse(images, axis=[-1])
    return images * tf.constant(self.std_rgb, tf.float32) + tf.constant(self.mean_rgb,
                                                                        tf.float32)

  def to_rgb_pixels_numpy(self, images):
    """numpy version of to_rgb_pixels (drawing and tools)."""
    images = np.asarray(images, np.float32)
    if self.channel_order == 'bgr':
      images = images[..., ::-1]
    return images * np.asarray(self.std_rgb, np.float32) + np.asarray(self.mean_rgb, np.float32)
