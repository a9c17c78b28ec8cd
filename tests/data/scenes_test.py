"""Analytic scene, cameras, and the NeRF-synthetic loader."""

import json

import numpy as np
from PIL import Image

from jaxopt_papers.data import scenes


def test_cameras_look_at_origin():
  poses = scenes.camera_poses(5, radius=3.0)
  for p in poses:
    np.testing.assert_allclose(np.linalg.norm(p[:, 3]), 3.0)
    # the camera looks down -z: -z axis points to the origin
    np.testing.assert_allclose(-p[:, 2], -p[:, 3] / 3.0, atol=1e-12)


def test_ground_truth_hits_and_misses():
  o = np.array([[0.0, 0.0, 3.0], [0.0, 3.0, 3.0]])
  d = np.array([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
  rgb = scenes.render_gt(o[:, None], d[:, None]).reshape(2, 3)
  np.testing.assert_allclose(rgb[1], 1.0, atol=1e-5)  # white background
  assert rgb[0].max() < 0.95  # the sphere


def test_disk():
  img = scenes.disk_silhouette(64)
  assert img.shape == (64, 64) and 0.3 < img.mean() < 0.5


def test_blender_loader(tmp_path):
  frames = []
  poses = scenes.camera_poses(2)
  for i, p in enumerate(poses):
    a = np.zeros((4, 6, 4), np.uint8)
    a[..., 0] = 255
    a[..., 3] = 255 if i == 0 else 0
    Image.fromarray(a, 'RGBA').save(tmp_path / f'r_{i}.png')
    m = np.eye(4)
    m[:3] = p
    frames.append({'file_path': f'./r_{i}', 'transform_matrix': m.tolist()})
  meta = {'camera_angle_x': 0.7, 'frames': frames}
  (tmp_path / 'transforms_train.json').write_text(json.dumps(meta))
  views = scenes.load_blender(str(tmp_path))
  assert views.rgb.shape == (2, 4, 6, 3) and views.dirs.shape == (2, 4, 6, 3)
  np.testing.assert_allclose(views.rgb[0, 0, 0], [1, 0, 0])
  np.testing.assert_allclose(views.rgb[1, 0, 0], [1, 1, 1])  # on white
  np.testing.assert_allclose(views.origins[1, 0, 0], poses[1][:, 3])
