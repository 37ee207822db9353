"""dinno_ros: rclpy nodes running DiNNO on a team of ROS 2 robots."""
