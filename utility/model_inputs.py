"""What the input pipeline needs to know about the model, handed to it ready made.

The input pipeline (dataset/input_fn.py) resizes and normalizes images and encodes per-anchor
training targets; the model (net/model_spec.py ``model_inputs``) decides how: its input size,
its backbone's image convention, its default boxes and its target assigner. Passing this one
object down keeps dataset/ independent of net/ (neither imports the other).
"""

import dataclasses
from typing import Any

import numpy as np

from utility import image_convention


@dataclasses.dataclass(frozen=True, eq=False)
class ModelInputs:
  """Attributes:
    image_size: int, square network input side in pixels.
    convention: utility.image_convention.ImageConvention of the backbone.
    anchors: numpy float32 [num_anchors, 4] normalized [ymin, xmin, ymax, xmax], heads' order.
    assigner: utility.target_assigner.TargetAssigner (or any object with its assign method).
  """
  image_size: int
  convention: image_convention.ImageConvention
  anchors: np.ndarray
  assigner: Any

  @property
  def num_anchors(self):
    return int(self.anchors.shape[0])
