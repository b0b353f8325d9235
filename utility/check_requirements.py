"""Checks that the pinned requirements resolve on every platform, without installing anything.

    python -m utility.check_requirements                     # requirements.txt, 4 platforms
    python -m utility.check_requirements --requirements=requirements-gpu.txt \\
        --platforms=linux-x86_64

For each platform (Linux x86-64, Linux aarch64, macOS arm64, Windows x86-64; Python 3.11):

1. picks the lines of the requirements file (following ``-r`` includes) whose environment
   marker holds on that platform, evaluated here with ``packaging.markers`` for that
   platform's environment: pip itself evaluates markers against the interpreter it runs in,
   even with ``--platform``, so it cannot be asked to do this;
2. asks pip which wheel it would take for every picked pin (``pip install --dry-run --no-deps
   --only-binary=:all: --platform ... --report``): a pin without a wheel for the platform fails
   here, and the report gives each wheel's declared dependencies;
3. evaluates every dependency's marker for the platform (same reason as 1) and checks that each
   one that applies is pinned, at a version its specifier allows.

So the pinned set is complete and installable on each platform. It needs the package index
(PyPI) but downloads only metadata. Prints a table, then one JSON line.
"""

import collections
import json
import os
import re
import subprocess
import sys
import tempfile

if not __package__:  # Run as a script: put the repo root on sys.path.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from packaging import markers  # noqa: E402
from packaging import requirements as requirements_lib  # noqa: E402
from packaging import tags  # noqa: E402
from packaging import utils  # noqa: E402

PYTHON_VERSION = '3.11'

# name -> (pip --platform tags, marker environment). Linux: manylinux wheels for glibc 2.17 to
# 2.35 (CentOS 7 to Ubuntu 22.04); macOS: 12 (the oldest TensorFlow 2.15 supports) and what it
# accepts (older arm64 and universal2 wheels).
Platform = collections.namedtuple('Platform', ['pip_platforms', 'environment'])


def _manylinux(arch):
  return tuple(['manylinux2014_' + arch] + ['manylinux_2_%d_%s' % (minor, arch)
                                           for minor in range(17, 36)])


def _environment(os_name, sys_platform, platform_system, platform_machine):
  return {'os_name': os_name, 'sys_platform': sys_platform, 'platform_system': platform_system,
          'platform_machine': platform_machine, 'platform_release': '', 'platform_version': '',
          'python_version': PYTHON_VERSION, 'python_full_version': PYTHON_VERSION + '.9',
          'implementation_name': 'cpython', 'implementation_version': PYTHON_VERSION + '.9',
          'platform_python_implementation': 'CPython', 'extra': ''}


PLATFORMS = collections.OrderedDict([
    ('linux-x86_64', Platform(_manylinux('x86_64'),
                              _environment('posix', 'linux', 'Linux', 'x86_64'))),
    ('linux-aarch64', Platform(_manylinux('aarch64'),
                               _environment('posix', 'linux', 'Linux', 'aarch64'))),
    ('macos-arm64', Platform(tuple(tags.mac_platforms((12, 0), 'arm64')),
                             _environment('posix', 'darwin', 'Darwin', 'arm64'))),
    ('windows-amd64', Platform(('win_amd64',), _environment('nt', 'win32', 'Windows', 'AMD64'))),
])


def read_requirements(path):
  """Requirement lines of a requirements file, following ``-r FILE`` includes.

  Returns:
    list of (packaging Requirement, 'file:line') in file order.

  Raises:
    ValueError: for a line that is not a requirement or an include (naming file and line).
  """
  found = []
  with open(path, encoding='utf-8') as f:
    lines = f.read().splitlines()
  for number, raw in enumerate(lines, 1):
    line = re.sub(r'(^|\s)#.*$', '', raw).strip()
    if not line:
      continue
    include = re.match(r'^(-r|--requirement)\s*(\S+)$', line)
    if include:
      found += read_requirements(os.path.join(os.path.dirname(path), include.group(2)))
      continue
    try:
      found.append((requirements_lib.Requirement(line), '%s:%d' % (path, number)))
    except requirements_lib.InvalidRequirement as error:
      raise ValueError('%s:%d is not a requirement (%s).' % (path, number, error)) from None
  return found


def select(requirements, environment):
  """The requirements whose marker holds in environment (a marker environment dict)."""
  return [(req, where) for req, where in requirements
          if req.marker is None or req.marker.evaluate(environment)]


def pins_of(selected):
  """canonical name -> (exact version, extras, 'file:line'); problems for pins that are not ==.

  Returns:
    (pins dict, list of problem sentences).
  """
  pins, problems = {}, []
  for req, where in selected:
    name = utils.canonicalize_name(req.name)
    exact = [spec.version for spec in req.specifier if spec.operator == '==']
    if len(exact) != 1 or len(req.specifier) != 1:
      problems.append('%s: %s is not pinned to one version (use ==).' % (where, req))
      continue
    if name in pins:
      problems.append('%s: %s is pinned twice for this platform (also %s).'
                      % (where, req, pins[name][2]))
      continue
    pins[name] = (exact[0], set(req.extras), where)
  return pins, problems


def check_dependencies(report, pins, environment):
  """Problems with the dependencies declared by the wheels of a pip --report.

  Args:
    report: dict of pip's installation report ('install': [{'metadata': {'name', 'version',
      'requires_dist'}}]).
    pins: from pins_of.
    environment: marker environment of the platform.

  Returns:
    list of sentences (empty when every pin has a wheel and every dependency is pinned).
  """
  problems = []
  chosen = {utils.canonicalize_name(item['metadata']['name']): item['metadata']
            for item in report.get('install', [])}
  for name, (version, _, where) in sorted(pins.items()):
    if name not in chosen:
      problems.append('%s: pip found no wheel of %s==%s.' % (where, name, version))
    elif chosen[name]['version'] != version:
      problems.append('%s: pip chose %s %s instead of %s.'
                      % (where, name, chosen[name]['version'], version))
  for name, metadata in sorted(chosen.items()):
    extras = pins.get(name, (None, set(), None))[1]
    for line in metadata.get('requires_dist') or []:
      dependency = requirements_lib.Requirement(line)
      if not _applies(dependency, environment, extras):
        continue
      dep_name = utils.canonicalize_name(dependency.name)
      if dep_name not in pins:
        problems.append('%s %s needs %s, which is not pinned for this platform.'
                        % (name, metadata['version'], dependency))
      elif not dependency.specifier.contains(pins[dep_name][0], prereleases=True):
        problems.append('%s %s needs %s, but %s pins %s.'
                        % (name, metadata['version'], dependency, pins[dep_name][2],
                           pins[dep_name][0]))
  return problems


def _applies(dependency, environment, extras):
  if dependency.marker is None:
    return True
  for extra in [''] + sorted(extras):
    if dependency.marker.evaluate(dict(environment, extra=extra)):
      return True
  return False


def pip_report(selected, platform, pip_command=None):
  """Runs pip's dry run for the selected pins on platform; returns its report dict.

  Raises:
    RuntimeError: with pip's message when pip fails (e.g. no wheel for the platform).
  """
  pip_command = pip_command or [sys.executable, '-m', 'pip']
  with tempfile.TemporaryDirectory(prefix='check_requirements_') as tmp:
    listing = os.path.join(tmp, 'requirements.txt')
    with open(listing, 'w', encoding='utf-8') as f:
      f.write(''.join('%s\n' % _without_marker(req) for req, _ in selected))
    report_path = os.path.join(tmp, 'report.json')
    command = pip_command + [
        'install', '--dry-run', '--ignore-installed', '--no-deps', '--quiet',
        '--disable-pip-version-check', '--only-binary=:all:', '--python-version',
        PYTHON_VERSION, '--implementation', 'cp', '--target', os.path.join(tmp, 'target'),
        '--report', report_path, '-r', listing]
    for tag in platform.pip_platforms:
      command += ['--platform', tag]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
      errors = [l for l in result.stderr.splitlines() if l.startswith('ERROR')]
      raise RuntimeError(' '.join(errors) or result.stderr.strip()[-500:])
    with open(report_path, encoding='utf-8') as f:
      return json.load(f)


def _without_marker(req):
  extras = '[%s]' % ','.join(sorted(req.extras)) if req.extras else ''
  return '%s%s%s' % (req.name, extras, req.specifier)


def check_platform(requirements, name, pip_command=None):
  """(number of pins, list of problems) of a requirement list on the platform called name."""
  platform = PLATFORMS[name]
  selected = select(requirements, platform.environment)
  pins, problems = pins_of(selected)
  if problems:
    return len(pins), problems
  try:
    report = pip_report(selected, platform, pip_command)
  except RuntimeError as error:
    return len(pins), ['pip: %s' % error]
  return len(pins), check_dependencies(report, pins, platform.environment)


def main(argv):
  import argparse  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--requirements', default='requirements.txt')
  parser.add_argument('--platforms', default=','.join(PLATFORMS),
                      help='Comma-separated, of: %s.' % ', '.join(PLATFORMS))
  args = parser.parse_args(argv)
  names = [n for n in args.platforms.split(',') if n]
  unknown = [n for n in names if n not in PLATFORMS]
  if unknown:
    parser.error('--platforms: unknown %s; use %s.' % (', '.join(unknown), ', '.join(PLATFORMS)))
  try:
    requirements = read_requirements(args.requirements)
  except (OSError, ValueError) as error:
    parser.error('--requirements: %s' % error)
  results = collections.OrderedDict()
  print('%s, Python %s, resolved without installing' % (args.requirements, PYTHON_VERSION))
  print('%-16s %6s  %s' % ('platform', 'pins', 'result'))
  for name in names:
    count, problems = check_platform(requirements, name)
    results[name] = not problems
    print('%-16s %6d  %s' % (name, count, 'ok' if not problems else 'FAILED'))
    for problem in problems:
      print('    ' + problem)
  print(json.dumps({'requirements': args.requirements, 'python_version': PYTHON_VERSION,
                    'resolves': results}))
  return 0 if all(results.values()) else 1


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
