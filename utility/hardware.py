"""What this machine is: CPU model and instruction sets, oneDNN on or off, visible GPUs.

The facts that decide which TensorFlow kernels run here (net/kernel_support.py) and that the
bench scripts print beside their figures (``describe()``), so a speed is never quoted without
its CPU.

TensorFlow 2.15 on x86-64 turns oneDNN on by default only on CPUs with AVX-512 VNNI/BF16 or AMX
(``TF_ENABLE_ONEDNN_OPTS`` overrides it either way); elsewhere it runs its default (Eigen)
kernels, which have no NCHW layout and no fast bfloat16. Only CPUs with AVX512_BF16 or AMX
compute bfloat16 natively; elsewhere it is emulated and slower than float32.
"""

import functools
import os
import platform
import subprocess

# CPU flags (as /proc/cpuinfo spells them) that give native bfloat16 arithmetic.
FAST_BFLOAT16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')
# GPUs compute bfloat16 in hardware from compute capability 8.0 (Ampere) on.
FAST_BFLOAT16_GPU_CAPABILITY = (8, 0)


def _read_cpuinfo(path='/proc/cpuinfo'):
  try:
    with open(path, encoding='utf-8', errors='replace') as f:
      return f.read()
  except OSError:
    return ''


def parse_cpuinfo(text):
  """(model name, set of flags) from the text of /proc/cpuinfo ('' and {} when absent).

  x86 spells them 'model name' and 'flags', aarch64 'CPU part'/'Features' (no model name).
  """
  model, cpu_flags = '', set()
  for line in text.splitlines():
    key, _, value = line.partition(':')
    key = key.strip().lower()
    if key == 'model name' and not model:
      model = value.strip()
    elif key in ('flags', 'features') and not cpu_flags:
      cpu_flags = set(value.split())
  return model, cpu_flags


def parse_cpu_family_model(text):
  """'family F model M' of an x86 /proc/cpuinfo text ('' elsewhere): the model name alone
  ('AMD EPYC') does not tell Zen 4 (family 25) from Zen 5 (family 26) on a VM."""
  numbers = {}
  for line in text.splitlines():
    key, _, value = line.partition(':')
    key = key.strip().lower()
    if key in ('cpu family', 'model') and key not in numbers and value.strip().isdigit():
      numbers[key] = int(value)
    if len(numbers) == 2:
      return 'family %d model %d' % (numbers['cpu family'], numbers['model'])
  return ''


@functools.lru_cache(maxsize=None)
def cpu_family_model():
  """parse_cpu_family_model of this machine's /proc/cpuinfo (read once)."""
  return parse_cpu_family_model(_read_cpuinfo())


def _sysctl(name):
  try:
    return subprocess.run(['sysctl', '-n', name], capture_output=True, text=True,
                          timeout=5).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return ''


@functools.lru_cache(maxsize=None)
def cpu_model_and_flags():
  """(model name, frozenset of instruction-set flags) of this machine's CPU.

  Linux reads /proc/cpuinfo; macOS asks sysctl for the model (Apple silicon has none of the
  x86 flags); elsewhere the model is platform.processor() and the flags are unknown (empty),
  which makes every decision below take the portable choice.
  """
  model, cpu_flags = parse_cpuinfo(_read_cpuinfo())
  if not model and platform.system() == 'Darwin':
    model = _sysctl('machdep.cpu.brand_string')
  if not model:
    model = platform.processor() or platform.machine() or 'unknown CPU'
  return model, frozenset(cpu_flags)


def has_avx512(cpu_flags=None):
  """True if the CPU has AVX-512 Foundation."""
  cpu_flags = cpu_model_and_flags()[1] if cpu_flags is None else cpu_flags
  return 'avx512f' in cpu_flags


def cpu_has_fast_bfloat16(cpu_flags=None):
  """True if the CPU computes bfloat16 natively (AVX512_BF16 or AMX-BF16)."""
  cpu_flags = cpu_model_and_flags()[1] if cpu_flags is None else cpu_flags
  return any(flag in cpu_flags for flag in FAST_BFLOAT16_CPU_FLAGS)


def onednn_enabled():
  """True if TensorFlow runs its oneDNN CPU kernels in this process.

  Reads what TensorFlow itself decided (from the CPU and TF_ENABLE_ONEDNN_OPTS) the first time
  it asked, so it stays right for the whole process.
  """
  from tensorflow.python.util import _pywrap_util_port  # pylint: disable=import-outside-toplevel
  return bool(_pywrap_util_port.IsMklEnabled())


def gpus():
  """List of (device name, (major, minor) compute capability or None) of the visible GPUs."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  found = []
  for device in tf.config.list_physical_devices('GPU'):
    details = tf.config.experimental.get_device_details(device) or {}
    found.append((details.get('device_name', device.name), details.get('compute_capability')))
  return found


def gpu_has_fast_bfloat16(capability):
  """True for a compute capability of 8.0 or more (bfloat16 tensor cores)."""
  return capability is not None and tuple(capability) >= FAST_BFLOAT16_GPU_CAPABILITY


def describe(with_tensorflow=True):
  """A dict of this machine for logs and bench JSON lines.

  Keys: cpu_model, cpu_family_model, cpu_avx512, cpu_fast_bfloat16, cpu_count, and with
  tensorflow onednn and
  gpus (names); without it TensorFlow is not imported (the numpy-only evaluator bench).
  """
  model, cpu_flags = cpu_model_and_flags()
  machine = {'cpu_model': model,
             'cpu_family_model': cpu_family_model(),
             'cpu_avx512': has_avx512(cpu_flags),
             'cpu_fast_bfloat16': cpu_has_fast_bfloat16(cpu_flags), 'cpu_count': os.cpu_count()}
  if with_tensorflow:
    machine.update(onednn=onednn_enabled(), gpus=[name for name, _ in gpus()])
  return machine


def describe_line(machine=None):
  """One line naming the machine, e.g. 'AMD EPYC, no AVX-512, oneDNN off, 2 cores, no GPU'."""
  machine = machine or describe()
  name = machine['cpu_model']
  if machine.get('cpu_family_model'):
    name += ' (%s)' % machine['cpu_family_model']
  parts = [name, 'AVX-512' if machine['cpu_avx512'] else 'no AVX-512']
  if 'onednn' in machine:
    parts.append('oneDNN %s' % ('on' if machine['onednn'] else 'off'))
  parts.append('%d cores' % (machine['cpu_count'] or 0))
  if 'gpus' in machine:
    parts.append(', '.join(machine['gpus']) or 'no GPU')
  return ', '.join(parts)
