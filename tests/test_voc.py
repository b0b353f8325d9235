import os

import pytest

from dataset import voc

VOC_XML = """<annotation>
\t<folder>VOC2012</folder>
\t<filename>2008_000008.jpg</filename>
\t<size><width>500</width><height>442</height><depth>3</depth></size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>horse</name><pose>Left</pose><truncated>0</truncated><occluded>1</occluded>
\t\t<bndbox><xmin>53</xmin><ymin>87</ymin><xmax>471</xmax><ymax>420</ymax></bndbox>
\t\t<difficult>0</difficult>
\t</object>
\t<object>
\t\t<name> person </name><pose>Unspecified</pose><truncated>1</truncated>
\t\t<bndbox><xmin>158.5</xmin><ymin>44</ymin><xmax>289</xmax><ymax>167.25</ymax></bndbox>
\t\t<part><name>head</name>
\t\t\t<bndbox><xmin>169</xmin><ymin>46</ymin><xmax>199</xmax><ymax>85</ymax></bndbox></part>
\t</object>
</annotation>
"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
""" + ''.join(' <!ENTITY lol%d "%s">\n' % (i, ('&lol%s;' % ('' if i == 1 else i - 1)) * 10)
              for i in range(1, 10)) + """]>
<annotation><filename>&lol9;</filename></annotation>
"""


def _write(path, text):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(text if isinstance(text, bytes) else text.encode('utf-8'))
  return str(path)


def test_parse_annotation_reads_raw_values_and_ignores_parts(tmp_path):
  annotation = voc.parse_annotation(_write(tmp_path / 'a.xml', VOC_XML))
  assert annotation.filename == '2008_000008.jpg'
  assert (annotation.width, annotation.height) == (500, 442)
  assert annotation.objects == (
      voc.VocObject('horse', 53.0, 87.0, 471.0, 420.0, difficult=0, truncated=0),
      # Fractional coordinates stay floats; <difficult> absent -> 0; the <part> box is ignored.
      voc.VocObject('person', 158.5, 44.0, 289.0, 167.25, difficult=0, truncated=1))


def test_parse_annotation_defaults_for_missing_filename_and_size(tmp_path):
  xml = ('<annotation><size><width>0</width><height>10</height></size><object><name>cat</name>'
         '<difficult>1</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax>'
         '<ymax>4</ymax></bndbox></object></annotation>')
  annotation = voc.parse_annotation(_write(tmp_path / '000123.xml', xml))
  assert annotation.filename == '000123.jpg'
  assert (annotation.width, annotation.height) == (None, None)
  assert annotation.objects == (voc.VocObject('cat', 1., 2., 3., 4., 1, 0),)
  no_size = voc.parse_annotation(_write(tmp_path / 'b.xml', '<annotation></annotation>'))
  assert (no_size.width, no_size.height, no_size.objects) == (None, None, ())


@pytest.mark.parametrize('xml, message', [
    ('<annotation><object>', 'is not well-formed XML'),
    ('', 'is not well-formed XML'),
    ('<annotation><object><name>cat</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax>'
     '</bndbox></object></annotation>', '<ymax> is missing or empty'),
    ('<annotation><object><name>cat</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax>'
     '<ymax>four</ymax></bndbox></object></annotation>', "<ymax> is 'four', not a number"),
    ('<annotation><object><name>cat</name></object></annotation>', r'has no <bndbox>'),
    ('<annotation><object><bndbox/></object></annotation>', r'has no <name>'),
    ('<annotation><object><name>cat</name><difficult>yes</difficult><bndbox><xmin>1</xmin>'
     '<ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>',
     "<difficult> is 'yes', not a number"),
    ('<voc></voc>', 'root element is <voc>, expected <annotation>'),
    ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     '<annotation>&x;</annotation>', 'DOCTYPE declarations are not allowed'),
])
def test_parse_annotation_errors_name_the_file(tmp_path, xml, message):
  path = _write(tmp_path / 'bad.xml', xml)
  with pytest.raises(voc.AnnotationError) as error:
    voc.parse_annotation(path)
  assert message in str(error.value)
  assert path in str(error.value)


def test_entity_bomb_is_refused_before_expansion(tmp_path):
  # Expanded, this would be 10**9 'lol's (3 GB); refusing the DOCTYPE keeps it tiny and fast.
  path = _write(tmp_path / 'bomb.xml', BILLION_LAUGHS)
  assert os.path.getsize(path) < 2000
  with pytest.raises(voc.AnnotationError, match='bomb.xml: DOCTYPE declarations are not allowed'):
    voc.parse_annotation(path)


def test_oversized_annotation_is_refused(tmp_path):
  path = _write(tmp_path / 'big.xml', b'<annotation>' + b' ' * (voc.MAX_ANNOTATION_BYTES + 1))
  with pytest.raises(voc.AnnotationError, match='larger than'):
    voc.parse_annotation(path)


def _split_tree(tmp_path, text):
  path = tmp_path / 'VOCdevkit' / 'VOC2007' / 'ImageSets' / 'Main' / 'trainval.txt'
  _write(path, text)
  return str(tmp_path)


def test_read_split_ids_tolerates_crlf_blanks_spaces_bom_and_repeats(tmp_path):
  root = _split_tree(tmp_path, b'\xef\xbb\xbf000005\r\n\r\n  000007  \r\n000005\r\n000009 -1\n\n')
  assert voc.read_split_ids(root, 'VOC2007', 'trainval') == ['000005', '000007', '000009']
  # The VOCdevkit folder itself works as the root too.
  devkit = os.path.join(root, 'VOCdevkit')
  assert voc.read_split_ids(devkit, 'VOC2007', 'trainval') == ['000005', '000007', '000009']


def test_missing_year_folder_error_names_path_and_flag(tmp_path):
  root = _split_tree(tmp_path, '000005\n')
  with pytest.raises(voc.DatasetLayoutError) as error:
    voc.read_split_ids(root, 'VOC2012', 'trainval')
  message = str(error.value)
  assert os.path.join(root, 'VOCdevkit', 'VOC2012') in message
  assert '--train_splits=VOC2007:trainval' in message


def test_missing_split_file_error_names_path(tmp_path):
  root = _split_tree(tmp_path, '000005\n')
  with pytest.raises(voc.DatasetLayoutError) as error:
    voc.read_split_ids(root, 'VOC2007', 'test')
  expected = os.path.join(root, 'VOCdevkit', 'VOC2007', 'ImageSets', 'Main', 'test.txt')
  assert 'Split file %s not found' % expected in str(error.value)
  assert '--val_splits=VOC2007:test' in str(error.value)


def test_paths_accept_non_ascii_ids(tmp_path):
  root = _split_tree(tmp_path, 'bild_ä\n')
  year = os.path.join(root, 'VOCdevkit', 'VOC2007')
  assert voc.annotation_path(root, 'VOC2007', 'bild_ä') == os.path.join(
      year, 'Annotations', 'bild_ä.xml')
  assert voc.image_path(root, 'VOC2007', 'bild_ä') == os.path.join(
      year, 'JPEGImages', 'bild_ä.jpg')
  path = _write(voc.annotation_path(root, 'VOC2007', 'bild_ä'), VOC_XML)
  assert len(voc.parse_annotation(path).objects) == 2
  assert voc.read_split_ids(root, 'VOC2007', 'trainval') == ['bild_ä']


def test_sanitize_objects_drops_clips_and_warns():
  objects = (
      voc.VocObject('dog', 10, 20, 30, 40, 1, 0),         # valid: kept as is
      voc.VocObject('dragon', 10, 20, 30, 40),            # unknown class
      voc.VocObject('dog', 30, 20, 10, 40),               # xmin > xmax
      voc.VocObject('cat', -5, 0.5, 120, 70.5, 0, 1),     # clipped to the 100 x 60 image
      voc.VocObject('cat', 101, 10, 150, 20),             # entirely right of the image
      voc.VocObject('cat', 0, 0, 0, 10),                  # pixel edges [-1, 0]: zero area
      voc.VocObject('dog', 7, 8, 7, 8),                   # one pixel: a valid 1 x 1 box
      voc.VocObject('dog', 2.5, 3.25, 4.75, 9.5),         # fractional: unchanged
  )
  annotation = voc.VocAnnotation('x.jpg', 100, 60, objects)
  kept, warnings = voc.sanitize_objects(annotation, 100, 60, ('cat', 'dog'), source='a.xml')
  assert kept == [objects[0], voc.VocObject('cat', 1.0, 1.0, 100.0, 60.0, 0, 1), objects[6],
                  objects[7]]
  assert warnings == [
      "a.xml: object 1: dropped object with unknown class 'dragon'.",
      "a.xml: object 2: dropped box 'dog' (30, 20, 10, 40): xmin > xmax or ymin > ymax.",
      "a.xml: object 3: clipped box 'cat' (-5, 0.5, 120, 70.5) to the 100x60 image: "
      "(1, 1, 100, 60).",
      "a.xml: object 4: dropped box 'cat' (101, 10, 150, 20): zero area inside the 100x60 image.",
      "a.xml: object 5: dropped box 'cat' (0, 0, 0, 10): zero area inside the 100x60 image.",
  ]


def test_sanitize_objects_names_the_annotation_file_by_default():
  annotation = voc.VocAnnotation('000001.jpg', 10, 10, (voc.VocObject('cow', 1, 1, 5, 5),))
  kept, warnings = voc.sanitize_objects(annotation, 10, 10, ('cat',))
  assert kept == []
  assert warnings == ["000001.jpg: object 0: dropped object with unknown class 'cow'."]
