"""Whether TensorFlow runs its oneDNN CPU kernels: one decision per job, network kind and CPU
kind, made by each script before TensorFlow runs its first op.

TensorFlow 2.15 on x86-64 turns oneDNN on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX
(utility/hardware.py). On the AVX2-only CPUs measured here (2 cores; README, "Measured figures",
has each command) its default kernels are the slower choice for most of this project's graphs,
so the scripts turn oneDNN on there, except for the one case where the default kernels won:

- inference (eval_ssd.py, export_ssd.py, simple_ssd_demo.py, bench/forward.py, bench/inference.py,
  bench/conv_peak.py): oneDNN on. With it the 3x3 convolutions of inference graphs run by
  Winograd (net/kernel_support.choose_conv_algorithm). SSD300 on a Zen 3, `bench/speed_report.py`:
  forward 2.61 / 3.36 images/s at batch 1 / 8 against 2.07 / 1.93 with the default kernels,
  detection 2.47 / 2.25 against 1.79 / 1.93.
- training (train_ssd.py, bench/train_step.py, bench/peak_memory.py) of a network with batch
  norm or below full width: oneDNN on. `bench/train_step.py --flagfile=configs/<recipe>.flags
  --skip_pipeline` on a Zen 3: the quick model of `make demo` 15.2 against 9.1 images/s (10.9
  against 8.3 on a Zen 2), SSDLite-MobileNetV2 10.0 against 6.3, SSD300-MobileNetV1 6.6
  against 6.3 (batch 8), the quick model without batch norm 16.1 against 14.1.
- training of the reference SSD300 / SSD512 VGG16 (no batch norm, full width): oneDNN on as
  well, as its 3x3 convolutions then train by Winograd (net/winograd.py). Measured on a Zen 4
  with oneDNN held to its AVX2 kernels (`ONEDNN_MAX_CPU_ISA=AVX2 TF_ENABLE_ONEDNN_OPTS=1
  bench/train_step.py --steps=3 --warmup=1 --skip_pipeline`, 2026-12-04; TensorFlow's default
  kernels are the same code on every x86 CPU, built for AVX as its start-up message says): SSD300 at batch 8 trains at 1.35 images/s
  against 0.80 with the default kernels. Not yet measured on an AVX2 CPU itself.
- the same network with --conv_algorithm=direct: TensorFlow's default kernels, which train it
  faster than oneDNN's direct convolutions (0.57 against 0.44 images/s at batch 8 on a Zen 3,
  0.42 against 0.31 on a Zen 2; 0.80 against 0.73 on the Zen 4 held to AVX2).

Where TensorFlow already turns it on (AVX-512 VNNI/BF16 or AMX), on CPUs without AVX2, on other
architectures and where the flags are unknown (macOS, Windows), TensorFlow's own default stays:
nothing was measured there. TF_ENABLE_ONEDNN_OPTS in the environment always wins.

TensorFlow reads part of TF_ENABLE_ONEDNN_OPTS when it is imported (a process that sets it
afterwards reports oneDNN on, but trained the quick MobileNet at 27-29 instead of 39-44
images/s), so ``apply`` must run before the import: the inference scripts call it at their
top; train_ssd.py knows its network only after its flags are parsed and restarts itself with
the choice (utility.script_setup.decide_onednn).
"""

import os

from utility import hardware

ENV = 'TF_ENABLE_ONEDNN_OPTS'
# Set beside ENV by apply(): a process restarted with the choice (utility.script_setup) logs the
# reason instead of 'in the environment'.
REASON_ENV = 'SSD_ONEDNN_REASON'
JOBS = ('inference', 'training')

# The CPU flags (as /proc/cpuinfo spells them) with which TensorFlow 2.15 turns oneDNN on itself.
TENSORFLOW_ONEDNN_CPU_FLAGS = ('avx512_vnni', 'avx512_bf16', 'amx_tile', 'amx_bf16', 'amx_int8')

_decision = None  # (value or None, reason) of apply() in this process


def choose(job, cpu_flags, environ, default_kernels_faster=False):
  """Whether `job` should run oneDNN on a CPU with `cpu_flags`.

  Args:
    job: 'inference' or 'training' (JOBS).
    cpu_flags: set of the CPU's instruction-set flags (utility.hardware.cpu_model_and_flags).
    environ: the process environment (a mapping).
    default_kernels_faster: training a network the default kernels train faster (the
      reference VGG16 with direct convolutions; net.model_spec.default_kernels_train_faster).

  Returns:
    (value, reason): value '1' to turn oneDNN on, None to leave TensorFlow's default (or the
    environment's setting); reason one sentence for the log.

  Raises:
    ValueError: for an unknown job.
  """
  if job not in JOBS:
    raise ValueError('oneDNN job must be one of %s, got %r.' % (', '.join(JOBS), job))
  if environ.get(ENV) is not None:
    return None, '%s=%s in the environment decides oneDNN.' % (ENV, environ[ENV])
  if any(flag in cpu_flags for flag in TENSORFLOW_ONEDNN_CPU_FLAGS):
    return None, ('TensorFlow turns oneDNN on by itself on this CPU (AVX-512 VNNI/BF16 or '
                  'AMX).')
  if 'avx2' not in cpu_flags:
    return None, ("this CPU reports no AVX2 (or its flags are unknown here): TensorFlow's "
                  'default kernels, as nothing faster was measured on such a CPU.')
  if job == 'training' and default_kernels_faster:
    return None, ("TensorFlow's default kernels for training a network without batch norm at "
                  'full width with --conv_algorithm=direct on an AVX2 CPU: they train '
                  "SSD300-VGG16's direct convolutions 1.3x faster than oneDNN there "
                  '(utility/onednn.py; %s=1 turns oneDNN on).' % ENV)
  what = 'inference' if job == 'inference' else 'training'
  return '1', ("oneDNN on for %s on an AVX2 CPU without AVX-512 VNNI, where it was measured "
               "faster than TensorFlow's default kernels (utility/onednn.py; %s=0 keeps the "
               'default kernels).' % (what, ENV))


def apply(job, environ=None, cpu_flags=None, default_kernels_faster=False):
  """Sets TF_ENABLE_ONEDNN_OPTS for this process as ``choose`` decides; returns the reason.

  Call before TensorFlow runs anything. The decision is kept for ``decision()``, which the
  scripts log once logging is set up.
  """
  global _decision
  environ = os.environ if environ is None else environ
  cpu_flags = hardware.cpu_model_and_flags()[1] if cpu_flags is None else cpu_flags
  if environ.get(REASON_ENV) and environ.get(ENV) == '1':  # this process's restart
    _decision = ('1', environ[REASON_ENV])
    return _decision[1]
  value, reason = choose(job, cpu_flags, environ, default_kernels_faster)
  if value is not None:
    environ[ENV] = value
    environ[REASON_ENV] = reason
  _decision = (value, reason)
  return reason


def decision():
  """(value or None, reason) of this process's apply(), or None if it was not called."""
  return _decision
