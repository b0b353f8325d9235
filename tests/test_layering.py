"""The package layering, read from the imports: utility <- preprocessing <- (dataset | net).

utility imports nothing of the project's other packages; preprocessing only utility; dataset
and net build on both and never import each other (the input pipeline gets what it needs from
the model as a utility.model_inputs.ModelInputs). Scripts, bench/ and tests/ sit on top. Only
scripts read the command-line flag definitions (utility/ssd_flags.py).
"""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALLOWED = {
    'utility': {'utility'},
    'preprocessing': {'preprocessing', 'utility'},
    'dataset': {'dataset', 'preprocessing', 'utility'},
    'net': {'net', 'preprocessing', 'utility'},
}
FLAG_MODULE = 'utility.ssd_flags'


def project_imports(path):
  """(line, module) of every import of a project package in a file, e.g. (12, 'net.vgg')."""
  tree = ast.parse(open(path, encoding='utf-8').read(), path)
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [node.module + '.' + alias.name for alias in node.names]
    else:
      continue
    found.extend((node.lineno, name) for name in names if name.split('.')[0] in ALLOWED)
  return found


def _modules(package):
  folder = os.path.join(REPO, package)
  return sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith('.py'))


@pytest.mark.parametrize('package', sorted(ALLOWED))
def test_packages_import_only_the_layers_below(package):
  violations = []
  for path in _modules(package):
    for line, module in project_imports(path):
      if module.split('.')[0] not in ALLOWED[package]:
        violations.append('%s:%d imports %s' % (os.path.relpath(path, REPO), line, module))
      elif module.startswith(FLAG_MODULE) and not path.endswith('ssd_flags.py'):
        violations.append('%s:%d imports the flag definitions %s (only scripts may)'
                          % (os.path.relpath(path, REPO), line, module))
  assert violations == []


def test_the_reader_sees_an_upward_import(tmp_path):
  path = tmp_path / 'bad.py'
  path.write_text('import os\nfrom net import model_spec\nimport dataset.voc as voc\n'
                  'from utility import boxes, labels\n')
  assert project_imports(str(path)) == [(2, 'net.model_spec'), (3, 'dataset.voc'),
                                        (4, 'utility.boxes'), (4, 'utility.labels')]
