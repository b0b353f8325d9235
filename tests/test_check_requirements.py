"""utility/check_requirements.py: per-platform marker selection and the dependency check.

pip's own dry run needs the package index, so `make check-platforms` runs it; these tests cover
what the script decides by itself, on files they write and on the repository's own pins.
"""

import os
import subprocess
import sys

import pytest

from utility import check_requirements as check

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(platform):
  return check.PLATFORMS[platform].environment


def _names(selected):
  return [req.name for req, _ in selected]


def test_the_repositorys_pins_pick_one_tensorflow_per_platform():
  requirements = check.read_requirements(os.path.join(REPO, 'requirements.txt'))
  expected = {'linux-x86_64': ['tensorflow-cpu'], 'windows-amd64': ['tensorflow-cpu',
                                                                    'tensorflow-intel'],
              'macos-arm64': ['tensorflow'],
              'linux-aarch64': ['tensorflow', 'tensorflow-cpu-aws']}
  for platform, names in expected.items():
    selected = check.select(requirements, _env(platform))
    assert [n for n in _names(selected) if n.startswith('tensorflow-')
            and n not in ('tensorflow-estimator', 'tensorflow-io-gcs-filesystem')
            or n == 'tensorflow'] == names, platform
    pins, problems = check.pins_of(selected)
    assert problems == [], platform
    assert pins['tensorflow-io-gcs-filesystem'][0] == (
        '0.31.0' if platform == 'windows-amd64' else '0.37.1')
    assert ('colorama' in pins) == (platform == 'windows-amd64')


def test_includes_comments_and_markers_are_read_for_the_target_not_this_machine(tmp_path):
  (tmp_path / 'base.txt').write_text('six==1.17.0  # comment\n\n# only a comment\n')
  (tmp_path / 'main.txt').write_text(
      '-r base.txt\n'
      'winonly==1.0; platform_system == "Windows"\n'
      'armonly==2.0; platform_machine == "aarch64"\n')
  requirements = check.read_requirements(str(tmp_path / 'main.txt'))
  assert [(req.name, where.rsplit(os.sep, 1)[-1]) for req, where in requirements] == [
      ('six', 'base.txt:1'), ('winonly', 'main.txt:2'), ('armonly', 'main.txt:3')]
  assert _names(check.select(requirements, _env('windows-amd64'))) == ['six', 'winonly']
  assert _names(check.select(requirements, _env('linux-aarch64'))) == ['six', 'armonly']
  assert _names(check.select(requirements, _env('macos-arm64'))) == ['six']


def test_unpinned_duplicate_and_malformed_lines_are_named(tmp_path):
  (tmp_path / 'r.txt').write_text('six>=1.0\nsix==1.17.0\nnumpy==1.26.4\nnumpy==1.26.3\n')
  pins, problems = check.pins_of(check.read_requirements(str(tmp_path / 'r.txt')))
  assert sorted(pins) == ['numpy', 'six']
  assert [p.split(': ', 1)[1] for p in problems] == [
      'six>=1.0 is not pinned to one version (use ==).',
      'numpy==1.26.3 is pinned twice for this platform (also %s:3).' % (tmp_path / 'r.txt')]
  (tmp_path / 'bad.txt').write_text('six==1.17.0\n--pre ???\n')
  with pytest.raises(ValueError, match=r'bad.txt:2 is not a requirement'):
    check.read_requirements(str(tmp_path / 'bad.txt'))


def _report(*items):
  return {'install': [{'metadata': {'name': name, 'version': version,
                                    'requires_dist': list(requires)}}
                      for name, version, requires in items]}


def test_dependencies_are_checked_with_the_targets_markers_and_extras():
  pins = {'tensorflow': ('2.15.1', {'and-cuda'}, 'r.txt:1'), 'six': ('1.17.0', set(), 'r.txt:2'),
          'wrapt': ('1.16.0', set(), 'r.txt:3')}
  report = _report(
      ('tensorflow', '2.15.1', ['six>=1.12', 'wrapt<1.15,>=1.11',
                                'tensorflow-intel==2.15.1; platform_system == "Windows"',
                                'nvidia-cudnn-cu12==8.9.4.25; extra == "and-cuda"']),
      ('six', '1.17.0', []), ('wrapt', '1.16.0', []))
  problems = check.check_dependencies(report, pins, _env('linux-x86_64'))
  assert problems == [
      'tensorflow 2.15.1 needs wrapt<1.15,>=1.11, but r.txt:3 pins 1.16.0.',
      'tensorflow 2.15.1 needs nvidia-cudnn-cu12==8.9.4.25; extra == "and-cuda", which is not '
      'pinned for this platform.']
  windows = check.check_dependencies(report, pins, _env('windows-amd64'))
  assert ('tensorflow 2.15.1 needs tensorflow-intel==2.15.1; platform_system == "Windows", '
          'which is not pinned for this platform.') in windows


def test_a_pin_pip_did_not_choose_is_reported():
  pins = {'six': ('1.17.0', set(), 'r.txt:1'), 'numpy': ('1.26.4', set(), 'r.txt:2')}
  problems = check.check_dependencies(_report(('six', '1.16.0', [])), pins, _env('macos-arm64'))
  assert problems == ['r.txt:2: pip found no wheel of numpy==1.26.4.',
                      'r.txt:1: pip chose six 1.16.0 instead of 1.17.0.']


def test_pip_platform_tags_cover_the_wheels_tensorflow_ships():
  assert 'manylinux_2_17_x86_64' in check.PLATFORMS['linux-x86_64'].pip_platforms
  assert 'manylinux2014_aarch64' in check.PLATFORMS['linux-aarch64'].pip_platforms
  mac = check.PLATFORMS['macos-arm64'].pip_platforms
  assert mac[0] == 'macosx_12_0_arm64' and 'macosx_11_0_arm64' in mac
  assert check.PLATFORMS['windows-amd64'].pip_platforms == ('win_amd64',)


def test_the_pinned_tensorboard_starts():
  # tensorboard 2.15 imports pkg_resources at start-up; setuptools 81+ dropped it, and then
  # `python -m tensorboard.main` (README's TensorBoard command) fails before serving anything.
  result = subprocess.run([sys.executable, '-m', 'tensorboard.main', '--version'],
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == '2.15.2'
