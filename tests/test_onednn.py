"""utility/onednn.py: oneDNN per job and CPU kind, applied before TensorFlow decides."""

import os
import subprocess
import sys

import pytest

from utility import onednn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AVX2 = {'sse4_2', 'avx', 'avx2', 'fma'}
ZEN4 = AVX2 | {'avx512f', 'avx512bw', 'avx512_vnni', 'avx512_bf16'}


@pytest.mark.parametrize('job', onednn.JOBS)
def test_avx2_cpus_turn_onednn_on_for_inference_and_batch_norm_training(job):
  value, reason = onednn.choose(job, AVX2, {})
  assert value == '1'
  assert reason.startswith('oneDNN on for %s on an AVX2 CPU without AVX-512 VNNI' % (
      'inference' if job == 'inference' else 'training a network with batch norm or thin'))
  assert 'TF_ENABLE_ONEDNN_OPTS=0 keeps the default kernels' in reason


def test_avx2_cpus_train_the_plain_full_width_network_with_the_default_kernels():
  value, reason = onednn.choose('training', AVX2, {}, plain_full_width=True)
  assert value is None
  assert reason.startswith("TensorFlow's default kernels for training a network without batch "
                           'norm at full width on an AVX2 CPU')
  # Inference of the same network runs oneDNN (Winograd).
  assert onednn.choose('inference', AVX2, {}, plain_full_width=True)[0] == '1'


@pytest.mark.parametrize('cpu_flags, environ, expected', [
    (AVX2, {'TF_ENABLE_ONEDNN_OPTS': '0'}, 'TF_ENABLE_ONEDNN_OPTS=0 in the environment'),
    (ZEN4, {'TF_ENABLE_ONEDNN_OPTS': '1'}, 'TF_ENABLE_ONEDNN_OPTS=1 in the environment'),
    (ZEN4, {}, 'TensorFlow turns oneDNN on by itself on this CPU'),
    (AVX2 | {'amx_tile'}, {}, 'TensorFlow turns oneDNN on by itself'),
    ({'sse4_2', 'avx'}, {}, 'this CPU reports no AVX2'),
    (set(), {}, 'or its flags are unknown here'),  # macOS, Windows, aarch64
])
def test_elsewhere_tensorflow_or_the_environment_decides(cpu_flags, environ, expected):
  for job in onednn.JOBS:
    for plain_full_width in (False, True):
      value, reason = onednn.choose(job, cpu_flags, environ, plain_full_width)
      assert value is None and expected in reason


def test_unknown_job_is_refused():
  with pytest.raises(ValueError, match=r"oneDNN job must be one of inference, training, got "
                                       r"'serving'\."):
    onednn.choose('serving', AVX2, {})


def test_apply_sets_the_variable_only_when_chosen():
  environ = {}
  reason = onednn.apply('inference', environ=environ, cpu_flags=AVX2)
  assert environ == {'TF_ENABLE_ONEDNN_OPTS': '1'}
  assert onednn.decision() == ('1', reason)
  environ = {'TF_ENABLE_ONEDNN_OPTS': '0'}
  onednn.apply('training', environ=environ, cpu_flags=AVX2)
  assert environ == {'TF_ENABLE_ONEDNN_OPTS': '0'}
  assert onednn.decision()[0] is None
  environ = {}
  onednn.apply('training', environ=environ, cpu_flags=AVX2, plain_full_width=True)
  assert environ == {}
  onednn.apply('training', environ=environ, cpu_flags=ZEN4)
  assert environ == {}


_CHILD = """
import os, sys
sys.argv = ['eval_ssd.py']
import eval_ssd  # every import of a script, TensorFlow included, before the decision
from utility import onednn, hardware
onednn.apply('inference', cpu_flags={'avx2'})
import tensorflow as tf
tf.compat.v1.disable_eager_execution()
with tf.compat.v1.Session() as session:
  session.run(tf.nn.relu(tf.constant([[-1.0, 2.0]])))
print(os.environ['TF_ENABLE_ONEDNN_OPTS'], hardware.onednn_enabled())
"""


def test_a_decision_after_the_scripts_imports_holds_for_the_process():
  """TensorFlow reads the variable when it first asks, not at import: what script_setup.run
  relies on (it applies the decision after the script's imports, before main)."""
  env = {key: value for key, value in os.environ.items() if key != 'TF_ENABLE_ONEDNN_OPTS'}
  env['TF_CPP_MIN_LOG_LEVEL'] = '2'
  result = subprocess.run([sys.executable, '-c', _CHILD], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split()[-2:] == ['1', 'True']


@pytest.mark.parametrize('overrides, expected', [
    ({}, True),  # SSD300-VGG16 as the paper has it
    ({'width_multiplier': 0.5}, False),
    ({'backbone_batch_norm': True}, False),
    ({'extra_batch_norm': True}, False),
    ({'backbone': 'mobilenet_v1'}, False),  # batch norm in every layer
])
def test_plain_full_width_is_the_reference_vgg_network_only(overrides, expected):
  from net import model_spec  # pylint: disable=import-outside-toplevel
  from utility import config as config_lib  # pylint: disable=import-outside-toplevel
  model = config_lib.ModelConfig(architecture='ssd300', **overrides)
  assert model_spec.plain_full_width(model) is expected
