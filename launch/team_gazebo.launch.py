"""A DiNNO team in Gazebo: gz sim with a world, one ros_gz_bridge, and every robot node.

    python -m dinno_core.tasks.mapping.gazebo office --robots 4 --out /tmp/gz
    ros2 launch dinno_ros team_gazebo.launch.py config:=team.yaml \
        world:=/tmp/gz/office.sdf bridge_config:=/tmp/gz/office_bridge.yaml

or let the launch write both files for the team's size: `plan:=office` (world and
bridge_config left empty). The bridge (ros_gz_bridge parameter_bridge in config-file mode)
carries /clock and each robot's /<robot>/scan and /<robot>/odom (and cmd_vel); the robots
run with use_sim_time:=true. Robot processes, parameters and remappings come from
dinno_ros.launch_plans.gazebo_launch_plan (the spec `dinno-team` uses); a 'simulator' section of
the config is ignored here (Gazebo simulates). Needs Gazebo and ros_gz_bridge installed: without
them the launch refuses in one line before starting anything. A generated world names the
systems of the Gazebo that gz_command runs (gz sim: Harmonic's gz-sim-*; ign gazebo: Fortress'
ignition-gazebo-*). When Gazebo exits the whole launch shuts down.
Launch APIs used here exist in Humble, Jazzy and Kilted.
"""

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dinno_ros.launch_support import check_gazebo
from dinno_ros.launch_plans import gazebo_launch_plan

ARGUMENTS = [
    DeclareLaunchArgument(
        "config", description="Team config YAML (dinno_ros.team_spec format); robots must be named like the "
                              "world's models (robot_0, robot_1, ...).",
    ),
    DeclareLaunchArgument(
        "world", default_value="",
        description="SDF world written by python -m dinno_core.tasks.mapping.gazebo (<plan>.sdf). Empty "
                    "together with bridge_config: generated from 'plan'.",
    ),
    DeclareLaunchArgument(
        "bridge_config", default_value="",
        description="ros_gz_bridge YAML written by the same tool (<plan>_bridge.yaml). Empty together with "
                    "world: generated from 'plan'.",
    ),
    DeclareLaunchArgument(
        "plan", default_value="",
        description="Floor plan to generate world and bridge_config from when they are empty: a built-in "
                    "plan (office, campus_wing) or a map_server YAML. Files go to <out>/gazebo.",
    ),
    DeclareLaunchArgument(
        "out", default_value="",
        description="Results folder (robots' results, checkpoints, params files). Empty: the config's "
                    "results_dir, else results/<name>.",
    ),
    DeclareLaunchArgument(
        "gz_command", default_value="gz sim",
        description="Gazebo command: 'gz sim' (Harmonic and newer), 'ign gazebo' (Fortress with Humble).",
    ),
    DeclareLaunchArgument(
        "gz_args", default_value="-r",
        description="Arguments before the world file: '-r' starts the simulation running; add '-s' for a "
                    "server without GUI (headless), '-v 4' for verbose output.",
    ),
]


def _setup(context, *args, **kwargs):
    value = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    # Before anything is written or started: without Gazebo or ros_gz_bridge this raises with
    # one line, which ros2 launch prints before exiting 1.
    gazebo = check_gazebo(value("gz_command"))
    plan = gazebo_launch_plan(
        value("config"), world=value("world"), bridge_config=value("bridge_config"), out=value("out"),
        gz_command=value("gz_command"), gz_args=value("gz_args"), plan=value("plan"), gazebo=gazebo,
    )
    gz = ExecuteProcess(cmd=list(plan.gz_cmd), output="screen")
    return [
        LogInfo(msg=f"DiNNO team '{plan.spec.name}' in Gazebo ({gazebo}) world {plan.world}, bridge "
                    f"{plan.bridge_config}, results in {plan.results_dir}"),
        # Gazebo closed (or crashed): nothing moves or senses any more, stop the team.
        RegisterEventHandler(OnProcessExit(target_action=gz, on_exit=[
            EmitEvent(event=Shutdown(reason="Gazebo exited"))])),
        gz,
    ] + [Node(**node) for node in plan.nodes]


def generate_launch_description():
    return LaunchDescription(ARGUMENTS + [OpaqueFunction(function=_setup)])
