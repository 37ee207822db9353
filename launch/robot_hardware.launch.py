"""ONE DiNNO robot node on a real robot (run this launch on every robot of the team).

From a team config shared by the team (parameters = the robot's entry in the team spec):

    ros2 launch dinno_ros robot_hardware.launch.py robot_id:=robot_2 team_config:=team.yaml \
        scan_topic:=/scan odom_topic:=/odometry/filtered

or from arguments and a ROS params file (e.g. config/robot.yaml for algorithm/task):

    ros2 launch dinno_ros robot_hardware.launch.py robot_id:=robot_2 \
        team:=robot_0,robot_1,robot_2 neighbours:=robot_1 params_file:=robot.yaml

Neighbours' weights are expected on /<robot>/dinno/weights (the node's default
neighbour_weights_topic), so keep namespace at its default /<robot_id> unless the params file
sets neighbour_weights_topic. With communication_radius the node reads each teammate's pose
from /<robot>/odom (neighbour_odom_topic). The logic is dinno_ros.launch_plans.hardware_launch_plan.
Launch APIs used here exist in Humble, Jazzy and Kilted.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dinno_ros.launch_plans import hardware_launch_plan

ARGUMENTS = [
    DeclareLaunchArgument("robot_id", description="This robot's id, e.g. robot_2 (a team member)."),
    DeclareLaunchArgument(
        "namespace", default_value="",
        description="Node namespace. Empty: /<robot_id> (what teammates expect for the weights topic).",
    ),
    DeclareLaunchArgument(
        "team", default_value="",
        description="All robot ids in index order, comma-separated (robot_0,robot_1,robot_2). Empty: from "
                    "team_config or params_file.",
    ),
    DeclareLaunchArgument(
        "neighbours", default_value="",
        description="Static communication neighbours, comma-separated. Empty: from team_config/params_file, "
                    "or use communication_radius.",
    ),
    DeclareLaunchArgument(
        "communication_radius", default_value="",
        description="Metres; > 0: neighbours are the teammates within range (from their odometry). Exclusive "
                    "with neighbours. Empty or 0: not set here.",
    ),
    DeclareLaunchArgument(
        "scan_topic", default_value="",
        description="The robot's lidar topic (sensor_msgs/LaserScan), remapped onto the node's 'scan' "
                    "(mapping task). Empty: <namespace>/scan.",
    ),
    DeclareLaunchArgument(
        "odom_topic", default_value="",
        description="The robot's odometry topic (nav_msgs/Odometry), remapped onto the node's 'odom'. "
                    "Empty: <namespace>/odom.",
    ),
    DeclareLaunchArgument(
        "params_file", default_value="",
        description="ROS params file for the node (algorithm.*, task.*, rounds, ...), loaded before the "
                    "arguments above, which win. Empty: none.",
    ),
    DeclareLaunchArgument(
        "team_config", default_value="",
        description="Team config YAML (dinno_ros.team_spec format) shared by the team; the robot gets its "
                    "entry of the team spec. Empty: none.",
    ),
    DeclareLaunchArgument(
        "results_dir", default_value="",
        description="Folder for results (robots/<id>.json), checkpoints and the generated params file. "
                    "Empty: the team config's, else none (params file in a temporary folder).",
    ),
    DeclareLaunchArgument(
        "use_sim_time", default_value="",
        description="true/false. Empty: leave it to the files (default false).",
    ),
]

_NAMES = ("robot_id", "team", "neighbours", "communication_radius", "namespace", "scan_topic", "odom_topic",
          "params_file", "team_config", "results_dir", "use_sim_time")


def _setup(context, *args, **kwargs):
    plan = hardware_launch_plan(**{name: LaunchConfiguration(name).perform(context) for name in _NAMES})
    process = plan.process
    return [
        LogInfo(msg=f"DiNNO robot {process.key} as {process.fully_qualified_name}, params files "
                    f"{', '.join(plan.params_files[process.key])}"),
    ] + [Node(**node) for node in plan.nodes]


def generate_launch_description():
    return LaunchDescription(ARGUMENTS + [OpaqueFunction(function=_setup)])
