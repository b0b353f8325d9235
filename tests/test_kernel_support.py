"""net/kernel_support.py: compute dtype 'auto', start-up checks of the layout and the dtype."""

import dataclasses

import pytest

from net import kernel_support
from tests.conftest import tiny_config, train_tiny
from utility import config as config_lib
from utility import hardware

Machine = kernel_support.Machine
AVX2_CPU = Machine('AMD EPYC 7B12', cpu_fast_bfloat16=False, onednn=False, gpu_capabilities=())
AVX2_CPU_ONEDNN = AVX2_CPU._replace(onednn=True)
BF16_CPU = Machine('Intel Xeon Platinum 8481C', cpu_fast_bfloat16=True, onednn=True,
                   gpu_capabilities=())
AMPERE = AVX2_CPU._replace(gpu_capabilities=((8, 6),))
VOLTA = AVX2_CPU._replace(gpu_capabilities=((7, 0),))


class FakeProbe:
  """Stands in for the bfloat16 kernel probe; records whether it was asked."""

  def __init__(self, error=None):
    self.error, self.calls = error, 0

  def __call__(self):
    self.calls += 1
    return self.error


def test_auto_takes_bfloat16_on_a_cpu_with_native_bfloat16_and_onednn():
  probe = FakeProbe()
  dtype, reason = kernel_support.choose_compute_dtype('auto', BF16_CPU, probe)
  assert (dtype, probe.calls) == ('bfloat16', 1)
  assert reason == ('--compute_dtype=auto chose bfloat16: this CPU (Intel Xeon Platinum 8481C) '
                    'has AVX512_BF16/AMX and oneDNN is on.')


def test_auto_takes_float32_on_an_avx2_cpu_without_asking_the_probe():
  probe = FakeProbe()
  dtype, reason = kernel_support.choose_compute_dtype('auto', AVX2_CPU, probe)
  assert (dtype, probe.calls) == ('float32', 0)
  assert reason == ('--compute_dtype=auto chose float32: this CPU (AMD EPYC 7B12) has no '
                    'AVX512_BF16 or AMX, so bfloat16 is emulated.')


def test_auto_takes_float32_when_onednn_is_off_on_a_bfloat16_cpu():
  dtype, reason = kernel_support.choose_compute_dtype('auto', BF16_CPU._replace(onednn=False),
                                                      FakeProbe())
  assert dtype == 'float32'
  assert 'oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0)' in reason


def test_auto_falls_back_to_float32_when_the_bfloat16_probe_fails():
  probe = FakeProbe('Conv2DBackpropFilter: no kernel for bfloat16')
  dtype, reason = kernel_support.choose_compute_dtype('auto', BF16_CPU, probe)
  assert (dtype, probe.calls) == ('float32', 1)
  assert reason.endswith('but its bfloat16 kernels failed here (Conv2DBackpropFilter: no kernel '
                         'for bfloat16).')


@pytest.mark.parametrize('machine, expected', [(AMPERE, 'bfloat16'), (VOLTA, 'float32')])
def test_auto_on_gpus_follows_the_compute_capability(machine, expected):
  dtype, reason = kernel_support.choose_compute_dtype('auto', machine, FakeProbe())
  assert dtype == expected
  assert ('compute capability 8.6' if expected == 'bfloat16' else
          'compute capability 7.0 has no bfloat16 tensor cores') in reason


def test_explicit_bfloat16_that_cannot_run_fails_in_one_sentence_naming_the_flag():
  with pytest.raises(ValueError) as error:
    kernel_support.choose_compute_dtype('bfloat16', AVX2_CPU,
                                        FakeProbe('Conv2D: no bfloat16 kernel'))
  assert str(error.value) == ('--compute_dtype=bfloat16 cannot train on this CPU (AMD EPYC 7B12) '
                              '(Conv2D: no bfloat16 kernel); use --compute_dtype=auto or '
                              'float32.')


def test_explicit_bfloat16_that_runs_slowly_is_kept_with_a_warning():
  dtype, reason = kernel_support.choose_compute_dtype('bfloat16', AVX2_CPU, FakeProbe())
  assert dtype == 'bfloat16'
  assert reason.endswith('so expect it to be slower than float32.')


def test_float32_never_probes_and_unknown_values_are_named():
  probe = FakeProbe('unused')
  assert kernel_support.choose_compute_dtype('float32', AVX2_CPU, probe)[0] == 'float32'
  assert probe.calls == 0
  with pytest.raises(ValueError, match=r"--compute_dtype must be one of auto, float32, "
                                       r"bfloat16, got 'float16'"):
    kernel_support.choose_compute_dtype('float16', AVX2_CPU, probe)


def test_nchw_without_onednn_is_one_sentence_and_nhwc_never_probes():
  layout_probe = FakeProbe('MaxPool: Default MaxPoolingOp only supports NHWC on device type CPU')
  kernel_support.check_data_format('NHWC', AVX2_CPU, layout_probe)
  assert layout_probe.calls == 0
  with pytest.raises(ValueError) as error:
    kernel_support.check_data_format('NCHW', AVX2_CPU, layout_probe)
  assert str(error.value) == (
      "--data_format=NCHW cannot run here: TensorFlow's default CPU kernels run only NHWC "
      "(oneDNN is off on this CPU, AMD EPYC 7B12); use --data_format=NHWC (checkpoints load in "
      "either layout) or set TF_ENABLE_ONEDNN_OPTS=1.")
  kernel_support.check_data_format('NCHW', AVX2_CPU_ONEDNN, FakeProbe())  # runs: no error


def test_resolve_model_config_for_inference_falls_back_to_nhwc():
  model = config_lib.ModelConfig(data_format='NCHW', compute_dtype='auto')

  def probe(data_format, compute_dtype, with_gradients):
    assert with_gradients is False
    return 'Conv2D: only NHWC' if data_format == 'NCHW' else None

  resolved, notes = kernel_support.resolve_model_config(model, training=False, machine=AVX2_CPU,
                                                        probe_fn=probe, fallback_to_nhwc=True)
  assert (resolved.data_format, resolved.compute_dtype) == ('NHWC', 'float32')
  assert notes[0].startswith("Running in NHWC: --data_format=NCHW cannot run here")
  assert resolved.architecture == model.architecture
  with pytest.raises(ValueError, match='--data_format=NCHW cannot run here'):
    kernel_support.resolve_model_config(model, training=False, machine=AVX2_CPU, probe_fn=probe)


def test_real_probe_matches_the_kernels_of_this_process(kernel_path):
  # Under both kernel paths: NHWC always trains in float32 and bfloat16 (bfloat16 emulated
  # where the CPU lacks it); NCHW trains with oneDNN and fails with TensorFlow's default kernels.
  assert kernel_support.probe('NHWC', 'float32') is None
  assert kernel_support.probe('NHWC', 'bfloat16') is None
  nchw = kernel_support.probe('NCHW', 'float32')
  if kernel_path == '1':
    assert nchw is None
  else:
    assert 'only supports the NHWC tensor format' in nchw or 'only supports NHWC' in nchw, nchw
  assert hardware.onednn_enabled() == (kernel_path == '1')


@pytest.mark.kernel_paths('0')
def test_training_in_nchw_without_onednn_stops_before_any_work(tiny_records, tmp_path,
                                                              kernel_path):
  config = tiny_config()
  config = dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                                 data_format='NCHW'))
  model_dir = tmp_path / 'model'
  with pytest.raises(ValueError, match=r"^--data_format=NCHW cannot run here: TensorFlow's "
                                       r"default CPU kernels run only NHWC"):
    train_tiny(config, tiny_records['records'], str(model_dir))
  assert not model_dir.exists()  # nothing written


def test_quick_recipe_auto_trains_and_saves_auto(tiny_records, tmp_path, kernel_path, caplog):
  import logging
  caplog.set_level(logging.INFO)
  config = tiny_config(max_number_of_steps=2)
  config = dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                                 compute_dtype='auto'))
  model_dir = str(tmp_path / 'model')
  assert train_tiny(config, tiny_records['records'], model_dir) == 2
  assert config_lib.load(model_dir).model.compute_dtype == 'auto'  # chosen again on resume
  messages = [record.getMessage() for record in caplog.records]
  fast = hardware.cpu_has_fast_bfloat16() and kernel_path == '1'
  chosen = [m for m in messages if m.startswith('--compute_dtype=auto chose ')]
  assert chosen and chosen[0].startswith('--compute_dtype=auto chose %s'
                                         % ('bfloat16' if fast else 'float32')), messages
  assert any(m.startswith('Machine: ') and ('oneDNN on' if kernel_path == '1' else 'oneDNN off')
             in m for m in messages), messages


def test_parse_cpuinfo_of_x86_and_aarch64():
  x86 = ('processor\t: 0\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse avx avx2 fma\n\n'
         'processor\t: 1\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse avx avx2 fma\n')
  model, flags = hardware.parse_cpuinfo(x86)
  assert model == 'AMD EPYC 7B12' and flags == {'fpu', 'sse', 'avx', 'avx2', 'fma'}
  assert not hardware.has_avx512(flags) and not hardware.cpu_has_fast_bfloat16(flags)
  sapphire = {'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'}
  assert hardware.has_avx512(sapphire) and hardware.cpu_has_fast_bfloat16(sapphire)
  arm = 'processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd bf16 sve\nCPU part\t: 0xd40\n'
  assert hardware.parse_cpuinfo(arm) == ('', {'fp', 'asimd', 'bf16', 'sve'})
  zen5 = 'vendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n'
  assert hardware.parse_cpu_family_model(zen5) == 'family 26 model 2'
  assert hardware.parse_cpu_family_model(arm) == ''
  line = hardware.describe_line({'cpu_model': 'AMD EPYC', 'cpu_family_model': 'family 26 model 2',
                                 'cpu_avx512': True, 'cpu_count': 2, 'onednn': True, 'gpus': []})
  assert line == 'AMD EPYC (family 26 model 2), AVX-512, oneDNN on, 2 cores, no GPU'
  assert hardware.gpu_has_fast_bfloat16((8, 0)) and not hardware.gpu_has_fast_bfloat16((7, 5))
  assert not hardware.gpu_has_fast_bfloat16(None)
