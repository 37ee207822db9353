"""A DiNNO team on the embedded lidar simulator: every robot node plus the simulator node.

    ros2 launch dinno_ros team_sim.launch.py config:=/path/to/team_mapping.yaml [out:=DIR]

The processes, their parameters (params files written to <out>/params) and remappings come
from dinno_ros.launch_plans.team_launch_plan: the same spec `dinno-team CONFIG.yaml` runs, so
both start identical nodes. The config needs a `simulator:` section (`simulator: {}` takes the
defaults: `dinno_ros lidar_sim`). For live progress, team.json and plots use `dinno-team`.

The launch ends by itself once every robot has exited (each writes <out>/robots/<id>.json when
its rounds are done): the simulator is then stopped too. It exits 1, naming them, if a robot
exited with an error. Ctrl-C stops everything; every robot still writes its results.
Launch APIs used here exist in Humble, Jazzy and Kilted.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, LogInfo, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dinno_ros.launch_plans import team_launch_plan
from dinno_ros.launch_support import TeamEnd

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
    nodes = [Node(**node) for node in plan.nodes]
    end = TeamEnd(tuple(plan.spec.robots))

    def on_robot_exit(robot, event, _context):
        if not end.exited(robot, event.returncode):
            return None
        if end.failures:
            raise RuntimeError(end.summary())  # ros2 launch prints the line and exits 1
        return [LogInfo(msg=f"DiNNO team: {end.summary()}; shutting down"),
                EmitEvent(event=Shutdown(reason=end.summary()))]

    for process, node in zip(plan.processes, nodes):
        if process.role == "robot":
            actions.append(RegisterEventHandler(OnProcessExit(
                target_action=node,
                on_exit=lambda event, context, robot=process.key: on_robot_exit(robot, event, context))))
    return actions + nodes


def generate_launch_description():
    return LaunchDescription(ARGUMENTS + [OpaqueFunction(function=_setup)])
