"""A DiNNO team on the embedded lidar simulator: every robot node plus the simulator node.

    ros2 launch dinno_ros team_sim.launch.py config:=/path/to/team_mapping.yaml [out:=DIR]

The processes, their parameters (params files written to <out>/params) and remappings come
from dinno_ros.launch_plans.team_launch_plan: the same spec `dinno-team CONFIG.yaml` runs, so
both start identical nodes. The config needs a `simulator:` section (`simulator: {}` takes the
defaults: `dinno_ros lidar_sim`). For live progress, team.json and plots use `dinno-team`.
Launch APIs used here exist in Humble, Jazzy and Kilted.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dinno_ros.launch_plans import team_launch_plan

ARGUMENTS = [
    DeclareLaunchArgument(
        "config",
        description="Team config YAML (dinno_ros.team_spec format) with a 'simulator' section, e.g. "
                    "the mapping demo config.",
    ),
    DeclareLaunchArgument(
        "out", default_value="",
        description="Results folder: the robots' results_path/checkpoint files and the generated params "
                    "files go here. Empty: the config's results_dir, else results/<name> (relative to the "
                    "launch's working directory).",
    ),
    DeclareLaunchArgument(
        "use_sim_time", default_value="",
        description="true/false: nodes use /clock. Empty: the config's use_sim_time (default false).",
    ),
]


def _setup(context, *args, **kwargs):
    plan = team_launch_plan(
        LaunchConfiguration("config").perform(context),
        out=LaunchConfiguration("out").perform(context),
        use_sim_time=LaunchConfiguration("use_sim_time").perform(context),
        require_simulator=True,
    )
    actions = [LogInfo(msg=f"DiNNO team '{plan.spec.name}': {len(plan.spec.robots)} robots + simulator, "
                           f"results in {plan.results_dir}")]
    return actions + [Node(**node) for node in plan.nodes]


def generate_launch_description():
    return LaunchDescription(ARGUMENTS + [OpaqueFunction(function=_setup)])
