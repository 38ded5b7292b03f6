import xml.etree.ElementTree as ET

import numpy as np
import pytest

from performance_rnn.codecs import strokes as sc
from performance_rnn.errors import CodecError

S3 = np.array([[10, 20, 0], [5, 0, 0], [0, 5, 1], [-20, 3, 0], [4, 4, 1]], dtype=np.float32)


def test_stroke3_lines_round_trip():
    lines = sc.stroke3_to_lines(S3)
    assert [len(x) for x in lines] == [3, 2]
    np.testing.assert_allclose(lines[0][0], [10, 20])
    np.testing.assert_allclose(lines[1][-1], [-1, 32])
    np.testing.assert_allclose(sc.lines_to_stroke3(lines), S3, atol=1e-5)


def test_stroke3_stroke5_round_trip_and_end_cut():
    s5 = sc.stroke3_to_stroke5(S3)
    assert s5.shape == (5, 5)
    np.testing.assert_array_equal(s5[:, 2:].sum(1), 1)  # one-hot pen
    np.testing.assert_array_equal(s5[:, 3], S3[:, 2])  # p2 = pen lifts after the point
    np.testing.assert_allclose(sc.stroke5_to_stroke3(s5), S3)
    padded = np.vstack([s5, sc.END, sc.END, [[7, 7, 1, 0, 0]]])
    np.testing.assert_allclose(sc.stroke5_to_stroke3(padded), S3)  # everything after the first end is cut
    np.testing.assert_array_equal(sc.S0, [0, 0, 1, 0, 0])


def test_scale_factor_is_one_std_without_centring():
    a = np.array([[3, 4, 0], [-3, -4, 1]], dtype=np.float32)
    assert sc.scale_factor([a]) == pytest.approx(np.std([3, 4, -3, -4]))
    scaled = sc.scale(a, 2.0)
    np.testing.assert_allclose(scaled[:, :2], a[:, :2] / 2)
    np.testing.assert_array_equal(scaled[:, 2], a[:, 2])


def test_rdp_keeps_corners_and_drops_collinear_points():
    line = np.array([[0, 0], [1, 0.01], [2, 0], [3, 0], [3, 1], [3, 2]], dtype=float)
    np.testing.assert_allclose(sc.rdp(line, 0.1), [[0, 0], [3, 0], [3, 2]])
    assert len(sc.rdp(line, 0.0)) == len(line)
    assert len(sc.rdp(line, 0.001)) == 5  # the bump at x=1 stays; (3, 1) is exactly on its chord


def test_svg_path_absolute_relative_and_reflected_curves():
    lines = sc.parse_svg_path("M10,10 L20,10 h5 v5 Z m1,1 l2,0", samples_per_curve=4)
    assert len(lines) == 2
    np.testing.assert_allclose(lines[0], [[10, 10], [20, 10], [25, 10], [25, 15], [10, 10]])
    np.testing.assert_allclose(lines[1], [[11, 11], [13, 11]])
    # c: relative cubic; s: its control point reflected. Endpoints and the curve's midpoint are exact.
    (curve,) = sc.parse_svg_path("M0,0c0,10,10,10,10,0s10,-10,10,0", samples_per_curve=2)
    np.testing.assert_allclose(curve, [[0, 0], [5, 7.5], [10, 0], [15, -7.5], [20, 0]])


def test_svg_path_errors_are_codec_errors():
    with pytest.raises(CodecError, match="arcs"):
        sc.parse_svg_path("M0,0 A5,5 0 0 1 10,10")
    with pytest.raises(CodecError):
        sc.parse_svg_path("10,10")
    with pytest.raises(CodecError):
        sc.parse_svg_path("M0,0 C1,1")


def test_kanjivg_stroke_to_stroke3():
    d = "M11,54.25c3.19,0.62,6.25,0.75,9.73,0.5c20.64-1.5,50.39-5.12,68.58-5.24c3.6-0.02,5.77,0.24,7.57,0.49"
    (line,) = sc.parse_svg_path(d)
    s3 = sc.lines_to_stroke3([sc.rdp(line, 1.0)])
    assert 2 <= len(s3) < len(line)
    np.testing.assert_allclose(s3[0], [11, 54.25, 0])
    np.testing.assert_allclose(s3[:, :2].sum(0), [96.88, 50.0], atol=1e-3)  # ends where the path ends
    assert s3[-1, 2] == 1 and s3[:-1, 2].sum() == 0


def test_grid_svg_is_valid_xml_with_one_polyline_per_stroke():
    doc = sc.grid_svg([S3, S3[:3], np.zeros((0, 3))], cols=2, box=109)
    root = ET.fromstring(doc)
    assert root.get("width") == "256" and root.get("height") == "256"
    assert len(root.findall(".//{http://www.w3.org/2000/svg}polyline")) == 3
