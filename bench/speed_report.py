"""Every speed figure of SSD300-VGG16 on this machine in one table, optionally beside a peer
implementation's figures (torchvision's ssd300_vgg16, say) printed by a command of its own:

    python bench/speed_report.py
    python bench/speed_report.py --peer_command="/tmp/tv/bin/python /tmp/tv_peer.py" \
        --peer_allocator=tcmalloc
    python bench/speed_report.py --skip=input_pipeline,training   # the quick figures only
    python bench/speed_report.py --conv_algorithm=direct   # without Winograd (net/winograd.py)

Runs each bench script in a process of its own, one after the other, and reads its JSON line:
bench/forward.py (network only, batch 1 and 8), bench/inference.py (JPEG to detections, and
the post-processing alone with every class above the score threshold), bench/train_step.py
(batch 8, a cached batch), bench/input_pipeline.py (images/s on 2 cores and the numpy/OpenCV
baseline) and bench/conv_peak.py (the machine's convolution rate, what forward's GMAC/s is
measured against). Each process runs with this machine's defaults (oneDNN and the convolution
algorithm as net/kernel_support.py chooses; TF_ENABLE_ONEDNN_OPTS in the environment is
passed on).

--peer_command runs after them and must print, as its last JSON line, any of PEER_KEYS in
images/s (the peer's code is not part of this TensorFlow project: README, "SSD300-VGG16
against torchvision's ssd300_vgg16", says what the torchvision figures there timed).

--allocator / --peer_allocator preload tcmalloc or jemalloc (Debian's libtcmalloc-minimal4 /
libjemalloc2) into the project's / the peer's processes when the library is present, and fail
naming the package when it is not; glibc's malloc is the default.
Prints a table; the last line is one JSON object.
"""

import argparse
import ctypes.util
import json
import os
import shlex
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

from utility import hardware  # noqa: E402  (no TensorFlow import)

# allocator -> (library name for ctypes.util.find_library, Debian package).
ALLOCATORS = {'tcmalloc': ('tcmalloc_minimal', 'libtcmalloc-minimal4'),
              'jemalloc': ('jemalloc', 'libjemalloc2')}
FIGURES = ('forward', 'detection', 'training', 'input_pipeline', 'conv_peak')


def preload_path(allocator, flag):
  """The library to LD_PRELOAD for allocator ('' for glibc); ValueError naming flag if absent."""
  if allocator == 'glibc':
    return ''
  library, package = ALLOCATORS[allocator]
  found = ctypes.util.find_library(library)
  if not found:
    raise ValueError('%s=%s: lib%s is not installed (Debian/Ubuntu: apt-get install %s).'
                     % (flag, allocator, library, package))
  return found


def run_json(command, preload):
  """The last JSON line printed by command (a list), run with LD_PRELOAD=preload if given."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  if preload:
    env['LD_PRELOAD'] = preload
  result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          check=False)
  lines = [line for line in result.stdout.splitlines() if line.startswith('{')]
  if result.returncode or not lines:
    raise RuntimeError('%s failed (exit %d):\n%s' % (' '.join(command), result.returncode,
                                                     result.stderr[-2000:]))
  return json.loads(lines[-1])


def project_figures(skip, preload, conv_algorithm):
  """{figure key: value} of this project's bench scripts."""
  python = sys.executable
  algorithm = '--conv_algorithm=' + conv_algorithm
  figures = {}
  if 'forward' not in skip:
    forward = run_json([python, 'bench/forward.py', '--batch_sizes=1,8', algorithm], preload)
    figures.update({key: forward[key] for key in forward if key.startswith('forward_')})
    figures['conv_algorithm'] = forward['conv_algorithm']
    figures['machine'] = forward['machine']  # with oneDNN on or off, as TensorFlow decided
    figures['macs_per_image'] = forward['macs_per_image']
  if 'detection' not in skip:
    detection = run_json([python, 'bench/inference.py', '--batch_sizes=1,8', '--skip_voc_eval',
                          algorithm], preload)
    figures.update({key: detection[key] for key in detection
                    if key.startswith(('detect_images', 'postprocess_ms'))})
  if 'training' not in skip:
    training = run_json([python, 'bench/train_step.py', '--skip_pipeline', '--steps=4'], preload)
    figures['train_images_per_sec_b8'] = training['train_images_per_sec_b8_synthetic']
    figures['train_compute_dtype'] = training['compute_dtype']
  if 'input_pipeline' not in skip:
    pipeline = run_json([python, 'bench/input_pipeline.py'], preload)
    figures['input_pipeline_images_per_sec'] = max(
        value for key, value in pipeline.items()
        if key.startswith('images_per_sec_') and 'stage' not in key and 'baseline' not in key)
    figures['input_pipeline_numpy_baseline_images_per_sec'] = pipeline[
        'images_per_sec_numpy_baseline_2procs']
  if 'conv_peak' not in skip:
    peak = run_json([python, 'bench/conv_peak.py'], preload)
    figures['conv_peak_gmacs_per_sec'] = max(
        value for key, value in peak.items() if key.startswith('conv_gmacs_per_sec_'))
  return figures


PEER_KEYS = ('forward_images_per_sec_b1', 'forward_images_per_sec_b8',
             'detection_images_per_sec_b1', 'detection_images_per_sec_b8',
             'train_images_per_sec_b8')


def peer_figures(peer_command, preload):
  """{PEER_KEYS key: value} of the JSON line peer_command prints."""
  peer = run_json(shlex.split(peer_command), preload)
  return {key: peer[key] for key in PEER_KEYS if key in peer}


ROWS = (  # (label, project key, peer key, unit)
    ('forward, batch 1', 'forward_images_per_sec_b1', 'forward_images_per_sec_b1', 'images/s'),
    ('forward, batch 8', 'forward_images_per_sec_b8', 'forward_images_per_sec_b8', 'images/s'),
    ('detection incl. NMS, batch 1', 'detect_images_per_sec_b1', 'detection_images_per_sec_b1',
     'images/s'),
    ('detection incl. NMS, batch 8', 'detect_images_per_sec_b8', 'detection_images_per_sec_b8',
     'images/s'),
    ('post-processing alone, batch 1', 'postprocess_ms_per_image_b1', None, 'ms/image'),
    ('training step, batch 8', 'train_images_per_sec_b8', 'train_images_per_sec_b8',
     'images/s'),
    ('input pipeline, 2 cores', 'input_pipeline_images_per_sec', None, 'images/s'),
    ('  numpy/OpenCV baseline', 'input_pipeline_numpy_baseline_images_per_sec', None,
     'images/s'),
    ('convolution peak (bench/conv_peak.py)', 'conv_peak_gmacs_per_sec', None, 'GMAC/s'),
)


def print_table(ours, peer, machine):
  print('SSD300-VGG16 speed, %s' % hardware.describe_line(machine))
  print('CPU flags: %s' % (' '.join(sorted(
      flag for flag in hardware.cpu_model_and_flags()[1]
      if flag.startswith(('avx512', 'amx', 'avx2', 'fma')))) or 'none of AVX2/AVX-512/AMX'))
  print('convolutions: %s; training dtype: %s' % (ours.get('conv_algorithm', '-'),
                                                  ours.get('train_compute_dtype', '-')))
  print('%-40s %12s %12s %8s  %s' % ('figure', 'project', 'torchvision', 'ratio', 'unit'))
  for label, key, peer_key, unit in ROWS:
    if key not in ours:
      continue
    theirs = peer.get(peer_key) if peer_key else None
    ratio = '%.2fx' % (ours[key] / theirs) if theirs else ''
    print('%-40s %12.2f %12s %8s  %s' % (label, ours[key],
                                         '%.2f' % theirs if theirs else '', ratio, unit))
  if 'forward_gmacs_per_sec_b8' in ours and 'conv_peak_gmacs_per_sec' in ours:
    print('forward batch 8: %.1f G multiply-adds/s (direct-convolution count), %.0f%% of the '
          'convolution peak' % (ours['forward_gmacs_per_sec_b8'], 100 * ours[
              'forward_gmacs_per_sec_b8'] / ours['conv_peak_gmacs_per_sec']))
  if 'input_pipeline_images_per_sec' in ours:
    print('input pipeline: %.1fx the numpy/OpenCV baseline' % (
        ours['input_pipeline_images_per_sec']
        / ours['input_pipeline_numpy_baseline_images_per_sec']))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--peer_command', default='',
                      help='A command printing a JSON line of PEER_KEYS (images/s) for the '
                      'table; empty: the project only.')
  parser.add_argument('--conv_algorithm', default='auto', choices=['auto', 'direct', 'winograd'],
                      help='Inference convolutions of forward and detection (auto: as here).')
  parser.add_argument('--allocator', default='glibc', choices=['glibc'] + sorted(ALLOCATORS))
  parser.add_argument('--peer_allocator', default='glibc',
                      choices=['glibc'] + sorted(ALLOCATORS))
  parser.add_argument('--skip', default='', help='Comma-separated figures not to measure, of '
                      + ', '.join(FIGURES) + '.')
  args = parser.parse_args()
  skip = set(filter(None, args.skip.split(',')))
  if skip - set(FIGURES):
    parser.error('--skip: unknown figure(s) %s; choose from %s.'
                 % (', '.join(sorted(skip - set(FIGURES))), ', '.join(FIGURES)))
  try:
    preload = preload_path(args.allocator, '--allocator')
    peer_preload = preload_path(args.peer_allocator, '--peer_allocator')
  except ValueError as error:
    parser.error(str(error))
  ours = project_figures(skip, preload, args.conv_algorithm)
  peer = peer_figures(args.peer_command, peer_preload) if args.peer_command else {}
  machine = ours.pop('machine', None) or hardware.describe(with_tensorflow=False)
  print_table(ours, peer, machine)
  summary = dict(ours, allocator=args.allocator, machine=machine)
  if peer:
    summary.update({'peer_' + key: value for key, value in peer.items()},
                   peer_allocator=args.peer_allocator)
  print(json.dumps(summary))


if __name__ == '__main__':
  main()
