"""The robot side of a real deployment, without ROS: observation assembly, chunk scheduling, the safety filter,
the supervisor and the embodiment mapping. ROS adapters feed it messages and publish what it decides."""
