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
def test_avx2_cpus_turn_onednn_on_for_inference_and_training(job):
  value, reason = onednn.choose(job, AVX2, {})
  assert value == '1'
  assert reason.startswith('oneDNN on for %s on an AVX2 CPU without AVX-512 VNNI' % job)
  assert 'TF_ENABLE_ONEDNN_OPTS=0 keeps the default kernels' in reason


def test_avx2_cpus_train_the_direct_plain_full_width_network_with_the_default_kernels():
  value, reason = onednn.choose('training', AVX2, {}, default_kernels_faster=True)
  assert value is None
  assert reason.startswith("TensorFlow's default kernels for training a network without batch "
                           'norm at full width with --conv_algorithm=direct on an AVX2 CPU')
  # Inference of the same network runs oneDNN (Winograd).
  assert onednn.choose('inference', AVX2, {}, default_kernels_faster=True)[0] == '1'


@pytest.mark.parametrize('overrides, expected', [
    ({'conv_algorithm': 'direct'}, True),  # SSD300-VGG16 as the paper has it, direct
    ({'conv_algorithm': 'auto'}, False),  # Winograd where oneDNN is on: oneDNN trains faster
    ({'conv_algorithm': 'winograd'}, False),
    ({'conv_algorithm': 'direct', 'width_multiplier': 0.5}, False),
    ({'conv_algorithm': 'direct', 'backbone_batch_norm': True}, False),
])
def test_only_direct_convolutions_of_the_plain_network_train_faster_on_the_default_kernels(
    overrides, expected):
  from net import model_spec  # pylint: disable=import-outside-toplevel
  from utility import config as config_lib  # pylint: disable=import-outside-toplevel
  model = config_lib.ModelConfig(architecture='ssd300', **overrides)
  assert model_spec.default_kernels_train_faster(model) is expected
  # The reference SSD300 with the default --conv_algorithm=auto trains with oneDNN on AVX2.
  value = onednn.choose('training', AVX2, {}, model_spec.default_kernels_train_faster(model))[0]
  assert value == (None if expected else '1')


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
    for default_kernels_faster in (False, True):
      value, reason = onednn.choose(job, cpu_flags, environ, default_kernels_faster)
      assert value is None and expected in reason


def test_unknown_job_is_refused():
  with pytest.raises(ValueError, match=r"oneDNN job must be one of inference, training, got "
                                       r"'serving'\."):
    onednn.choose('serving', AVX2, {})


def test_apply_sets_the_variable_only_when_chosen():
  environ = {}
  reason = onednn.apply('inference', environ=environ, cpu_flags=AVX2)
  assert environ == {'TF_ENABLE_ONEDNN_OPTS': '1', 'SSD_ONEDNN_REASON': reason}
  assert onednn.decision() == ('1', reason)
  # A process restarted with that environment keeps the reason.
  assert onednn.apply('training', environ=dict(environ), cpu_flags=AVX2) == reason
  environ = {'TF_ENABLE_ONEDNN_OPTS': '0'}
  onednn.apply('training', environ=environ, cpu_flags=AVX2)
  assert environ == {'TF_ENABLE_ONEDNN_OPTS': '0'}
  assert onednn.decision()[0] is None
  environ = {}
  onednn.apply('training', environ=environ, cpu_flags=AVX2, default_kernels_faster=True)
  assert environ == {}
  onednn.apply('training', environ=environ, cpu_flags=ZEN4)
  assert environ == {}


_TRAINING_SCRIPT = """
import os, sys
sys.path.insert(0, %(repo)r)
print('start', os.environ.get('TF_ENABLE_ONEDNN_OPTS'), flush=True)
import tensorflow as tf  # imported before the decision, as train_ssd.py has it
from absl import app
from utility import hardware, script_setup
hardware.cpu_model_and_flags = lambda: ('Test AVX2 CPU', frozenset({'avx2', 'fma'}))


def main(argv):
  script_setup.setup()
  script_setup.decide_onednn('training', default_kernels_faster=False)
  print('decided', os.environ['TF_ENABLE_ONEDNN_OPTS'], hardware.onednn_enabled(), flush=True)


app.run(main)
"""


def test_a_training_decision_after_the_imports_restarts_the_process_with_it(tmp_path):
  """TensorFlow reads part of the setting at import: train_ssd.py, which decides after its
  imports, restarts itself with the variable set (and logs why once)."""
  script = tmp_path / 'train_like.py'
  script.write_text(_TRAINING_SCRIPT % {'repo': REPO})
  env = {key: value for key, value in os.environ.items()
         if key not in ('TF_ENABLE_ONEDNN_OPTS', 'SSD_ONEDNN_REASON')}
  env['TF_CPP_MIN_LOG_LEVEL'] = '2'
  result = subprocess.run([sys.executable, str(script)], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.split('\n')[:3] == ['start None', 'start 1', 'decided 1 True']
  assert result.stderr.count('oneDNN: restarting with TF_ENABLE_ONEDNN_OPTS=1') == 1
  assert result.stderr.count('oneDNN: oneDNN on for training on an AVX2 CPU') == 1


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
