"""The bridge on ROS 1 (franka_ros): the node around bridge.core, franka_msgs generated from their definitions, a
simulated Franka on the same topics, and a private ROS graph for tests and benchmarks. Needs rospy (Debian's
python3-rospy; scripts/setup_ros.sh)."""
