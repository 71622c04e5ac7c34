"""ROS 2 adapter: the rclpy node, message conversion and bag replay (the only rclpy user)."""
