#!/usr/bin/env bash
# ROS 1 from Debian (bookworm) for the ROS bridge (bridge/ros1) and its integration test: rospy, a master
# (rosmaster), genmsg/genpy (franka_msgs are generated from bridge/ros1/definitions) and actionlib; then make those
# modules importable from .venv. Idempotent; run by scripts/setup.sh after the venv exists.
set -euo pipefail
cd "$(dirname "$0")/.."
ROS_DEBS="python3-rospy python3-rosmaster python3-genpy python3-genmsg python3-actionlib python3-actionlib-msgs
  python3-std-msgs python3-geometry-msgs python3-sensor-msgs"
if ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null; then
  echo "setup: not a Debian system; ROS 1 not installed (the ROS tests will skip)"
  exit 0
fi
if ! dpkg -s $ROS_DEBS >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  if ! { $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends $ROS_DEBS; } >/dev/null; then
    echo "setup: could not install ROS 1 (the ROS tests will skip): sudo apt-get install $(echo $ROS_DEBS)"
    exit 0
  fi
fi
# The venv sees only the ROS modules and their Debian dependencies, through links in one folder that a .pth file
# appends to sys.path after site-packages; a module the venv has itself (numpy, yaml, six...) is not linked at all,
# nor Debian's pkg_resources (the venv's setuptools dropped it; libraries that probe for it must keep not finding it).
LINKS=.venv/ros1-system
SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf "$LINKS" && mkdir -p "$LINKS"
for pkg in $(apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts --no-breaks \
             --no-replaces --no-enhances --no-pre-depends $ROS_DEBS 2>/dev/null | grep -E '^python3-' | sort -u); do
  dpkg -L "$pkg" | grep -E '^/usr/lib/python3/dist-packages/[^/]+$' | grep -v -E '\.(egg|dist)-info$' || true
done | sort -u | while read -r path; do
  name=$(basename "$path")
  [ "$name" != pkg_resources ] || continue
  [ -e "$SITE/$name" ] || [ -e "$SITE/${name%.py}" ] || [ -e "$SITE/${name%.py}.py" ] || ln -s "$path" "$LINKS/$name"
done
echo "$(pwd)/$LINKS" > "$SITE/ros1_system.pth"
.venv/bin/python -c "import rospy, actionlib, genpy, genmsg, sensor_msgs.msg, geometry_msgs.msg" \
  && echo "setup: ROS 1 importable from .venv ($(ls "$LINKS" | wc -l) modules linked from Debian's python3)"
