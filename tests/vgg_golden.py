"""Golden outputs of the VGG16 SSD networks, recorded before the backbone interface existed.

tests/data/vgg_golden.json holds, per case, the variable names and shapes and the outputs at a
fixed set of anchors for deterministic weights and a deterministic image. It was written by the
code of commit a74bfca (VGG wired into net/ssd_net.py) with

  python -m tests.vgg_golden

and tests/test_backbones.py checks that today's code builds the same variables and, after
restoring a checkpoint of those weights, gives the same outputs.
"""

import json
import os
import zlib

import numpy as np
import tensorflow as tf

from net import model_spec
from utility import config as config_lib

tf1 = tf.compat.v1

GOLDEN_PATH = os.path.join(os.path.dirname(__file__), 'data', 'vgg_golden.json')
NUM_SAMPLED_ANCHORS = 64

# name -> ModelConfig overrides: the reference SSD300 and SSD512 at full width, and the quick
# model of configs/quick.flags (batch norm, width 0.25, scaled anchors).
CASES = {
    'ssd300': {},
    'ssd512': {'architecture': 'ssd512', 'image_size': 512},
    'ssd_quick': {'architecture': 'ssd_quick', 'image_size': 192, 'width_multiplier': 0.25,
                  'backbone_batch_norm': True, 'extra_batch_norm': True,
                  'anchor_min_scale': 0.08, 'anchor_max_scale': 0.85},
}


def model_config(case):
  return config_lib.ModelConfig(**CASES[case])


def variable_value(name, shape):
  """Deterministic float32 weights per variable name, scaled so activations stay O(1)."""
  rng = np.random.RandomState(zlib.crc32(name.encode('utf-8')))
  if name.endswith('/moving_variance'):
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)
  if name.endswith('/scale'):
    return np.full(shape, 20.0, np.float32)
  fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
  return (rng.standard_normal(shape) * np.sqrt(1.0 / fan_in)).astype(np.float32)


def image(size):
  """float32 [1, size, size, 3]: a smooth deterministic pattern in the mean-subtracted range."""
  y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
  channels = [np.sin(7 * x + 3 * y), np.cos(5 * y - 2 * x), np.sin(11 * x * y)]
  return (60.0 * np.stack(channels, -1))[None].astype(np.float32)


def sampled_anchors(num_anchors):
  return np.linspace(0, num_anchors - 1, NUM_SAMPLED_ANCHORS).round().astype(np.int64)


def run(case, checkpoint_dir=None):
  """Builds the case's network; returns (variables [(name, shape)], outputs dict of lists).

  Without checkpoint_dir the variables get variable_value; with it they are restored from the
  checkpoint written there (by write_checkpoint).
  """
  config = model_config(case)
  with tf.Graph().as_default():
    images = tf.constant(image(config.image_size))
    outputs = model_spec.build_network(images, config, is_training=False)
    variables = tf1.global_variables()
    names = [(v.op.name, v.shape.as_list()) for v in variables]
    with tf1.Session() as session:
      if checkpoint_dir is None:
        for variable in variables:
          variable.load(variable_value(variable.op.name, variable.shape.as_list()), session)
      else:
        tf1.train.Saver().restore(session, os.path.join(checkpoint_dir, 'golden'))
      offsets, logits = session.run([outputs['box_offsets'], outputs['class_logits']])
  index = sampled_anchors(offsets.shape[1])
  return names, {'num_anchors': int(offsets.shape[1]),
                 'box_offsets': offsets[0, index].tolist(),
                 'class_logits': logits[0, index].tolist(),
                 'box_offsets_sum': float(np.sum(offsets, dtype=np.float64)),
                 'class_logits_sum': float(np.sum(logits, dtype=np.float64))}


def write_checkpoint(variables, checkpoint_dir):
  """A checkpoint with the golden variable names and variable_value weights."""
  with tf.Graph().as_default():
    created = [tf1.Variable(variable_value(name, shape), name=name) for name, shape in variables]
    with tf1.Session() as session:
      session.run(tf1.variables_initializer(created))
      tf1.train.Saver(created).save(session, os.path.join(checkpoint_dir, 'golden'),
                                    write_meta_graph=False)


def load():
  with open(GOLDEN_PATH, encoding='utf-8') as f:
    return json.load(f)


def main():
  golden = {}
  for case in CASES:
    names, outputs = run(case)
    golden[case] = {'variables': names, 'outputs': outputs}
  os.makedirs(os.path.dirname(GOLDEN_PATH), exist_ok=True)
  with open(GOLDEN_PATH, 'w', encoding='utf-8') as f:
    json.dump(golden, f, indent=1, sort_keys=True)
    f.write('\n')


if __name__ == '__main__':
  main()
