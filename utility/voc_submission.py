"""A submission for the Pascal VOC evaluation server, for a split without ground truth.

The VOC2012 test annotations are not public: only the evaluation server computes AP on that
set. It takes a tar archive of the devkit result files in the devkit's own layout,

    results/<year>/Main/comp4_det_test_<class>.txt      (comp4: trained on any data)

one file per VOC class, lines '<image_id> <score> <xmin> <ymin> <xmax> <ymax>' in 1-based
pixels of the original image (utility/voc_metric.write_detections, which the VOC evaluator runs).

The split is known to have no ground truth from the converter's record: dataset/
convert_tfrecords.py --unannotated_splits writes "annotated": false for the set, next to the
names of its shards, in <data_dir>/conversion_summary.json. That record, not the records' zero
object counts, is the rule: an annotated set may well hold only images without objects, and
its detections must then be scored (all false positives), not packaged. The evaluator's result
(no class with ground truth) is checked against it afterwards.

No TensorFlow: json, glob, tarfile and the devkit file writer of utility/voc_metric.py.
"""

import collections
import glob
import gzip
import io
import json
import os
import re
import tarfile

from absl import logging

from utility import file_io
from utility import labels as label_utils
from utility import voc_metric

SUMMARY_FILENAME = file_io.CONVERSION_SUMMARY
DEFAULT_YEAR = 'VOC2012'
ARCHIVE_NAME = 'results.tar.gz'
_YEAR_PATTERN = re.compile(r'^[A-Za-z0-9_-]+$')

# One planned submission: the converter's record of the set (its name and summary dict), the
# year folder, where the evaluator writes its result files (results_dir), the archive's path and
# the VOC metric the evaluator runs (its AP is not computed: no ground truth).
Submission = collections.namedtuple(
    'Submission', ['set_name', 'set_stats', 'year', 'results_dir', 'archive_path', 'metric'])


def unannotated_set(data_dir, file_pattern):
  """The converted set without annotations whose shards file_pattern matches, or None.

  Args:
    data_dir: the folder of the records and conversion_summary.json.
    file_pattern: the evaluated shards, relative to data_dir (e.g. 'val-*').

  Returns:
    (set name, its summary dict) when every matched shard belongs to one set recorded with
    "annotated": false; None when none does (no summary, or annotated sets).

  Raises:
    ValueError: when the pattern matches shards of a set without annotations and others.
  """
  summary = file_io.read_conversion_summary(data_dir)
  matched = {os.path.realpath(p) for p in glob.glob(os.path.join(data_dir, file_pattern))}
  hits = []
  for name, stats in summary.get('sets', {}).items():
    shards = {os.path.realpath(os.path.join(data_dir, s)) for s in stats.get('shards', ())}
    if stats.get('annotated', True) is False and matched & shards:
      hits.append((name, stats, shards))
  if not hits:
    return None
  if len(hits) > 1 or not matched <= hits[0][2]:
    raise ValueError(
        '--val_file_pattern=%s matches shards of the set %s, converted without annotations, '
        'and other shards; name the shards of that set alone (e.g. --val_file_pattern=%s-*).'
        % (file_pattern, hits[0][0], hits[0][0]))
  return hits[0][0], hits[0][1]


def year_of(set_stats, year_flag=''):
  """The year folder of results/<year>/Main: the flag, else the set's one year, else VOC2012.

  Raises:
    ValueError: for a flag that is not a plain folder name.
  """
  if year_flag:
    if not _YEAR_PATTERN.match(year_flag):
      raise ValueError('--submission_year=%s must be a folder name such as VOC2012.'
                       % year_flag)
    return year_flag
  years = {label.partition(':')[0] for label in set_stats.get('splits', ())}
  if len(years) == 1 and _YEAR_PATTERN.match(next(iter(years))):
    return years.pop()
  return DEFAULT_YEAR


def results_directory(det_dir, year):
  """<det_dir>/results/<year>/Main, where the result files of the archive are written."""
  return os.path.join(det_dir, 'results', year, 'Main')


def plan(data_dir, file_pattern, det_dir, metric, year_flag=''):
  """The Submission for the evaluated shards when their set has no annotations, else None.

  Args:
    data_dir, file_pattern: the evaluated shards (unannotated_set).
    det_dir: receives results/<year>/Main/ and results.tar.gz.
    metric: the evaluator to run; it must be a VOC one (it writes the result files).
    year_flag: --submission_year ('' = year_of the set).

  Raises:
    ValueError: for shards of mixed sets, a bad --submission_year or a non-VOC metric.
  """
  found = unannotated_set(data_dir, file_pattern)
  if found is None:
    return None
  if metric not in voc_metric.METRICS:
    raise ValueError('--metric=%s needs ground truth, which %s has not (converted without '
                     'annotations); the evaluation server takes VOC result files: use '
                     '--metric=%s.' % (metric, ','.join(found[1].get('splits', ())),
                                       voc_metric.METRICS[0]))
  year = year_of(found[1], year_flag)
  return Submission(found[0], found[1], year, results_directory(det_dir, year),
                    os.path.join(det_dir, ARCHIVE_NAME), metric)


def check_no_ground_truth(submission, evaluator_summary):
  """Raises ValueError when the evaluator saw ground truth in a set recorded without it.

  Args:
    evaluator_summary: the VOC evaluator's summary(): {'ap': {class: AP or None}, ...}; an AP
      that is not None means that class had ground truth.
  """
  scored = sorted(name for name, ap in evaluator_summary.get('ap', {}).items() if ap is not None)
  if scored:
    raise ValueError('%s records the set %s as converted without annotations, but its records '
                     'hold objects of %s; convert the split again.'
                     % (SUMMARY_FILENAME, submission.set_name, ', '.join(scored)))


def _archive_member(year, class_name):
  return '/'.join(('results', year, 'Main',
                   os.path.basename(voc_metric.detection_file_path('', class_name))))


def complete_results(submission, class_names):
  """Ensures results/<year>/Main has a file for each of the 20 VOC classes; returns them.

  The evaluator wrote one file per class of the model; the server expects one per VOC class,
  so a VOC class the model lacks gets an empty file (no detections), overwriting any stale one.

  Raises:
    ValueError: if a class of the model is not a VOC class or its file is missing.
  """
  unknown = [name for name in class_names if name not in label_utils.VOC_CLASSES]
  if unknown:
    raise ValueError('The VOC evaluation server scores the 20 VOC classes; the model\'s '
                     'classes %s are not VOC classes.' % ', '.join(unknown))
  paths = []
  for name in label_utils.VOC_CLASSES:
    path = voc_metric.detection_file_path(submission.results_dir, name)
    if name not in class_names:
      file_io.atomic_write(path, b'')
    elif not os.path.isfile(path):
      raise ValueError('%s was not written by the evaluation; run eval_ssd.py again.' % path)
    paths.append((_archive_member(submission.year, name), path))
  return paths


def _add_file(archive, member, path):
  """Adds path as member with fixed owner, mode and time (reruns give identical archives)."""
  info = tarfile.TarInfo(member)
  info.size, info.mode, info.mtime = os.path.getsize(path), 0o644, 0
  with open(path, 'rb') as f:
    archive.addfile(info, f)


def write_archive(submission, class_names):
  """Writes submission.archive_path: a tar.gz of results/<year>/Main/comp4_det_test_<class>.txt.

  Members are the 20 files alone, in VOC class order, named with that relative layout (no
  folder entries); gzip and tar times are 0, so the same detections give the same bytes. The
  archive is written atomically (utility/file_io.py).

  Returns:
    The archive's path.
  """
  members = complete_results(submission, class_names)
  buffer = io.BytesIO()  # the 20 files compress to a few MB even for VOC2012 test
  with gzip.GzipFile(fileobj=buffer, mode='wb', mtime=0) as zipped:
    with tarfile.open(fileobj=zipped, mode='w', format=tarfile.USTAR_FORMAT) as archive:
      for member, path in members:
        _add_file(archive, member, path)
  file_io.atomic_write(submission.archive_path, buffer.getvalue())
  return submission.archive_path


def message(submission):
  """The one sentence eval_ssd.py prints instead of the AP table."""
  return ('No AP computed because %s has no ground truth; upload %s to the evaluation server.'
          % (','.join(submission.set_stats.get('splits', ())) or submission.set_name,
             submission.archive_path))


def skipped_warning(submission):
  """A warning when the converter skipped images of the set (the server counts them missed)."""
  listed = submission.set_stats.get('images_listed', 0)
  written = submission.set_stats.get('images_written', listed)
  if written >= listed:
    return None
  return ('%d of the %d images of %s were skipped at conversion (see %s); the server will find '
          'no detections for them.' % (listed - written, listed, submission.set_name,
                                       SUMMARY_FILENAME))


def write_summary(path, submission):
  """{"mAP": null, "submission": archive path, "metric": the VOC metric} as JSON, atomically."""
  data = {'mAP': None, 'submission': submission.archive_path, 'metric': submission.metric}
  file_io.atomic_write(path, json.dumps(data, indent=2) + '\n', mode='w')


def package(submission, evaluator_summary, class_names, json_output=''):
  """After the evaluation: checks, archives and (optionally) writes the JSON; the sentence.

  Args:
    submission: from plan().
    evaluator_summary: the VOC evaluator's summary() (check_no_ground_truth).
    class_names: the model's classes (the evaluator wrote one result file each).
    json_output: --json_output, '' for none.

  Returns:
    message(submission).

  Raises:
    ValueError: see check_no_ground_truth and complete_results.
  """
  check_no_ground_truth(submission, evaluator_summary)
  write_archive(submission, class_names)
  warning = skipped_warning(submission)
  if warning:
    logging.warning('%s', warning)
  if json_output:
    write_summary(json_output, submission)
  return message(submission)
