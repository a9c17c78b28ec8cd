"""Analytic radiance-field scenes and a NeRF-synthetic loader for DVGO.

The scene (built in code): a sphere of radius 0.5 at the origin, red for
``x > 0`` and blue for ``x <= 0``, and a green box ``[-0.9, -0.5]^2 x
[-0.3, 0.3]``; density ``sigma_max`` inside, 0 outside. Cameras sit on a
sphere of radius ``radius`` looking at the origin (pinhole, ``focal`` in
pixels, OpenGL convention: the camera looks down ``-z``). Ground truth is
rendered by dense ray marching (``num_samples`` samples, white background).
"""

from __future__ import annotations

import json
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Views(NamedTuple):
  origins: np.ndarray  # [V, H, W, 3]
  dirs: np.ndarray  # [V, H, W, 3]
  rgb: np.ndarray  # [V, H, W, 3]


def density_color(x, sigma_max=50.0):
  """Density ``[N]`` and colour ``[N, 3]`` of the analytic scene."""
  x = jnp.asarray(x)
  sphere = jnp.linalg.norm(x, axis=-1) < 0.5
  box = (
    (x[:, 0] > -0.9)
    & (x[:, 0] < -0.5)
    & (x[:, 1] > -0.9)
    & (x[:, 1] < -0.5)
    & (jnp.abs(x[:, 2]) < 0.3)
  )
  red = jnp.array([0.9, 0.1, 0.1])
  blue = jnp.array([0.1, 0.2, 0.9])
  green = jnp.array([0.1, 0.8, 0.2])
  col = jnp.where((x[:, :1] > 0), red[None], blue[None])
  col = jnp.where(box[:, None], green[None], col)
  sigma = jnp.where(sphere | box, sigma_max, 0.0)
  return sigma, col


def look_at(position):
  """Camera-to-world ``[3, 4]`` looking from ``position`` at the origin."""
  position = np.asarray(position, float)
  back = position / np.linalg.norm(position)
  up = np.array([0.0, 0.0, 1.0])
  if abs(back @ up) > 0.99:
    up = np.array([0.0, 1.0, 0.0])
  right = np.cross(up, back)
  right /= np.linalg.norm(right)
  true_up = np.cross(back, right)
  return np.stack([right, true_up, back, position], 1)


def camera_poses(num_views, radius=3.0, seed=0):
  """``[V, 3, 4]`` poses on a sphere (elevation in ``[-30, 60]`` degrees).

  Azimuths and elevations come from ``jax.random.key(seed)`` (float64 in
  NumPy after the draw).
  """
  k_az, k_el = jax.random.split(jax.random.key(seed))
  az = np.asarray(
    jax.random.uniform(k_az, (num_views,), maxval=2 * np.pi), np.float64
  )
  el = np.deg2rad(
    np.asarray(
      jax.random.uniform(k_el, (num_views,), minval=-30.0, maxval=60.0),
      np.float64,
    )
  )
  pos = radius * np.stack(
    [np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], 1
  )
  return np.stack([look_at(p) for p in pos])


def rays(poses, height, width, focal):
  """Origins and (unnormalised, z=-1 in camera) directions ``[V, H, W, 3]``."""
  j, i = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  d = np.stack(
    [
      (i + 0.5 - width / 2) / focal,
      -(j + 0.5 - height / 2) / focal,
      -np.ones_like(i, float),
    ],
    -1,
  )
  dirs = np.einsum('hwc,vrc->vhwr', d, poses[:, :, :3])
  origins = np.broadcast_to(poses[:, None, None, :, 3], dirs.shape)
  return np.array(origins), dirs


def render_gt(origins, dirs, near=1.0, far=5.0, num_samples=256, bg=1.0):
  """Dense ray marching of the analytic scene; ``[N, 3]`` colours."""
  o = jnp.asarray(origins).reshape(-1, 3)
  d = jnp.asarray(dirs).reshape(-1, 3)
  step = (far - near) / num_samples
  t = near + (jnp.arange(num_samples) + 0.5) * step
  pts = o[:, None] + d[:, None] * t[None, :, None]
  sigma, col = density_color(pts.reshape(-1, 3))
  sigma = sigma.reshape(pts.shape[:2])
  col = col.reshape(pts.shape)
  delta = step * jnp.linalg.norm(d, axis=-1, keepdims=True)
  tau = sigma * delta
  cum = jnp.cumsum(tau, -1)
  excl = cum - tau
  w = jnp.exp(-excl) * (-jnp.expm1(-tau))
  rgb = jnp.sum(w[..., None] * col, 1) + jnp.exp(-cum[:, -1:]) * bg
  return np.asarray(rgb).reshape(np.shape(origins))


def make_views(num_views, size, focal=None, radius=3.0, seed=0):
  """Analytic-scene views of ``size x size`` pixels."""
  focal = 1.2 * size if focal is None else focal
  poses = camera_poses(num_views, radius, seed)
  o, d = rays(poses, size, size, focal)
  return Views(o, d, render_gt(o, d))


def disk_silhouette(size=128, radius=0.35):
  """A 2-D disk image ``[size, size]`` in ``{0, 1}`` on ``[0, 1]^2``."""
  u = (np.arange(size) + 0.5) / size
  x, y = np.meshgrid(u, u, indexing='ij')
  return ((x - 0.5) ** 2 + (y - 0.5) ** 2 < radius**2).astype(np.float32)


def load_blender(path, split='train', downscale=1, white_bkgd=True):
  """Load the standard NeRF-synthetic layout (``transforms_<split>.json``).

  Returns ``Views``. PNGs are read with PIL; RGBA is composited on white.
  """
  from PIL import Image  # pylint: disable=import-outside-toplevel

  with open(os.path.join(path, f'transforms_{split}.json')) as f:
    meta = json.load(f)
  imgs, poses = [], []
  for frame in meta['frames']:
    fname = frame['file_path']
    if not fname.endswith('.png'):
      fname += '.png'
    img = Image.open(os.path.join(path, fname))
    if downscale > 1:
      img = img.resize((img.width // downscale, img.height // downscale))
    a = np.asarray(img, np.float32) / 255.0
    if a.shape[-1] == 4:
      rgb, alpha = a[..., :3], a[..., 3:]
      a = rgb * alpha + (1.0 - alpha) if white_bkgd else rgb
    imgs.append(a[..., :3])
    poses.append(np.asarray(frame['transform_matrix'], float)[:3, :4])
  imgs = np.stack(imgs)
  poses = np.stack(poses)
  h, w = imgs.shape[1:3]
  focal = 0.5 * w / np.tan(0.5 * float(meta['camera_angle_x']))
  o, d = rays(poses, h, w, focal)
  return Views(o, d, imgs)
