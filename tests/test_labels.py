import pytest

from utility import labels


def test_voc_labels_are_alphabetical_and_one_based():
  mapping = labels.name_to_label()
  assert labels.VOC_NUM_CLASSES == 21
  assert mapping['aeroplane'] == 1 and mapping['person'] == 15 and mapping['tvmonitor'] == 20
  assert list(labels.VOC_CLASSES) == sorted(labels.VOC_CLASSES)
  assert labels.label_to_name()[0] == 'background'


def test_parse_class_names_accepts_commas_and_crlf_lines():
  assert labels.parse_class_names('cat, dog') == ('cat', 'dog')
  assert labels.parse_class_names('cat\r\n\r\ndog\r\n') == ('cat', 'dog')


@pytest.mark.parametrize('text, message', [
    ('', 'empty'), ('cat,cat', 'repeated: cat'), ('background,cat', 'reserved for label 0')])
def test_parse_class_names_errors(text, message):
  with pytest.raises(ValueError, match=message):
    labels.parse_class_names(text)
