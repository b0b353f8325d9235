"""bench/speed_report.py: the allocator preload, reading a bench's JSON line, the table."""

import sys

import pytest

from bench import speed_report


def test_glibc_preloads_nothing_and_a_missing_allocator_names_flag_and_package(monkeypatch):
  assert speed_report.preload_path('glibc', '--allocator') == ''
  monkeypatch.setattr(speed_report.ctypes.util, 'find_library', lambda name: None)
  with pytest.raises(ValueError, match=r'--peer_allocator=tcmalloc: libtcmalloc_minimal is not '
                     r'installed \(Debian/Ubuntu: apt-get install libtcmalloc-minimal4\)'):
    speed_report.preload_path('tcmalloc', '--peer_allocator')
  monkeypatch.setattr(speed_report.ctypes.util, 'find_library',
                      lambda name: 'lib%s.so.2' % name)
  assert speed_report.preload_path('jemalloc', '--allocator') == 'libjemalloc.so.2'


def test_run_json_reads_the_last_json_line_and_passes_the_preload():
  script = ('import os, json; print("table"); print(json.dumps({"a": 1})); '
            'print(json.dumps({"preload": os.environ.get("LD_PRELOAD", "")}))')
  assert speed_report.run_json([sys.executable, '-c', script], '') == {'preload': ''}
  with pytest.raises(RuntimeError, match=r'failed \(exit 3\):\n.*boom'):
    speed_report.run_json([sys.executable, '-c',
                           'import sys; sys.stderr.write("boom"); sys.exit(3)'], '')


def test_table_prints_each_figure_with_the_ratio_to_the_peer(capsys):
  ours = {'forward_images_per_sec_b1': 8.0, 'forward_images_per_sec_b8': 10.0,
          'postprocess_ms_per_image_b1': 7.5, 'forward_gmacs_per_sec_b8': 300.0,
          'conv_peak_gmacs_per_sec': 200.0, 'conv_algorithm': 'winograd',
          'input_pipeline_images_per_sec': 600.0,
          'input_pipeline_numpy_baseline_images_per_sec': 200.0}
  peer = {'forward_images_per_sec_b1': 6.4, 'forward_images_per_sec_b8': 8.0}
  machine = {'cpu_model': 'Test CPU', 'cpu_family_model': 'family 26 model 2',
             'cpu_avx512': True, 'cpu_count': 2, 'onednn': True, 'gpus': []}
  speed_report.print_table(ours, peer, machine)
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == ('SSD300-VGG16 speed, Test CPU (family 26 model 2), AVX-512, oneDNN on, '
                      '2 cores, no GPU')
  rows = {line[:40].strip(): line[40:].split() for line in lines[4:]}
  assert rows['forward, batch 1'] == ['8.00', '6.40', '1.25x', 'images/s']
  assert rows['forward, batch 8'] == ['10.00', '8.00', '1.25x', 'images/s']
  assert rows['post-processing alone, batch 1'] == ['7.50', 'ms/image']
  assert 'detection incl. NMS, batch 1' not in rows  # not measured: no row
  assert lines[-2] == ('forward batch 8: 300.0 G multiply-adds/s (direct-convolution count), '
                       '150% of the convolution peak')
  assert lines[-1] == 'input pipeline: 3.0x the numpy/OpenCV baseline'


def test_peer_figures_keep_only_the_peer_keys_of_the_commands_json_line():
  script = ('import json; print(json.dumps({"forward_images_per_sec_b8": 7.1, '
            '"detection_images_per_sec_b1": 6.0, "machine": {"cpu_model": "x"}}))')
  command = '%s -c %s' % (sys.executable, speed_report.shlex.quote(script))
  assert speed_report.peer_figures(command, '') == {'forward_images_per_sec_b8': 7.1,
                                                    'detection_images_per_sec_b1': 6.0}
