"""Launch the cad_perception node (and optionally RViz) on a camera's image and camera_info.

    ros2 launch cad_perception cad_perception.launch.py \
        image_topic:=/camera/color/image_raw camera_info_topic:=/camera/color/camera_info

Arguments: namespace, image_topic, camera_info_topic, params_file (default: the installed
config/cad_perception.yaml), backend (overrides the file's), use_rviz.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "cad_perception"
EXECUTABLE = "cad_perception_node"
NODE_NAME = "cad_perception"
PARAMS_FILE = ("config", "cad_perception.yaml")
RVIZ_FILE = ("rviz", "cad_perception.rviz")
DEFAULTS = {
    "namespace": "",
    "image_topic": "image",
    "camera_info_topic": "camera_info",
    "backend": "auto",
    "use_rviz": "false",
}
DESCRIPTIONS = {
    "namespace": "Namespace of the node and its topics.",
    "image_topic": "sensor_msgs/Image topic to detect objects in (its /compressed with "
    "use_compressed).",
    "camera_info_topic": "sensor_msgs/CameraInfo topic of that image.",
    "backend": "Inference backend: auto, tensorrt, onnxruntime or torch.",
    "use_rviz": "Start RViz with the cad_perception display configuration.",
}


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument(name, default_value=value, description=DESCRIPTIONS[name])
        for name, value in DEFAULTS.items()
    ]
    arguments.append(
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([share, *PARAMS_FILE]),
            description="YAML file of the node's parameters.",
        )
    )
    image = LaunchConfiguration("image_topic")
    node = LifecycleNode(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=NODE_NAME,
        namespace=LaunchConfiguration("namespace"),
        parameters=[
            LaunchConfiguration("params_file"),
            {"backend": LaunchConfiguration("backend")},
        ],
        remappings=[
            ("image", image),
            ("image/compressed", [image, "/compressed"]),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
        ],
        output="screen",
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", PathJoinSubstitution([share, *RVIZ_FILE])],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
        output="screen",
    )
    return LaunchDescription([*arguments, node, rviz])
