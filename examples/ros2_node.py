"""A ROS 2-style embedding of hmrt: image in, 3D joints and camera-space root out.

The reconstruction logic is a plain Python class with a callback API (:class:`MeshRecovery`),
so it can be tested and reused without ROS. ``rclpy`` is imported only when the ROS 2 node runs:

    # inside a sourced ROS 2 workspace (rclpy, sensor_msgs, geometry_msgs available)
    python examples/ros2_node.py --model danet_edge.engine --ros
        subscribes  /image_raw        (sensor_msgs/Image, bgr8 or rgb8)
        publishes   /hmrt/joints      (geometry_msgs/PoseArray: 24 SMPL joints, metres)
                    /hmrt/root        (geometry_msgs/PointStamped: root translation)
    # without ROS: the same callbacks on a video file, messages printed as JSON lines
    python examples/ros2_node.py --model danet_edge.onnx --video clip.mp4 --max-frames 30

Frames are the camera's optical frame (x right, y down, z forward), the REP 103 "_optical"
convention, so ``header.frame_id`` should name the camera's optical frame.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hmrt.runtime import Reconstructor, Result


@dataclass
class PersonMessage:
    """What the node publishes for one frame (plain data, converted to ROS messages later)."""

    stamp: float
    frame_id: str
    joints: np.ndarray  # (24, 3) metres, camera optical frame
    root: np.ndarray  # (3,)
    confidence: float
    latency_ms: float
    backend: str

    def to_json(self) -> str:
        """One JSON line (the non-ROS output)."""
        return json.dumps({
            "stamp": round(self.stamp, 6), "frame_id": self.frame_id,
            "root": np.round(self.root, 4).tolist(), "confidence": round(self.confidence, 3),
            "latency_ms": round(self.latency_ms, 2), "backend": self.backend,
            "joints": np.round(self.joints, 4).tolist(),
        })  # fmt: skip


class MeshRecovery:
    """Callback API: ``on_image(frame_bgr, stamp)`` runs hmrt and calls every subscriber.

    Frames without a person (``Result.person_found`` is False: nobody detected, the track
    lost, a blank or out-of-image crop) are not published. One instance per
    camera stream; ROS executors may call ``on_image`` from any thread (the Reconstructor
    serialises calls on one instance).
    """

    def __init__(self, model: str, frame_id: str = "camera_optical_frame", **options):
        self.rec = Reconstructor(model, smoothing=options.pop("smoothing", "default"), **options)
        self.frame_id = frame_id
        self._subscribers: list[Callable[[PersonMessage], None]] = []

    def subscribe(self, callback: Callable[[PersonMessage], None]) -> None:
        """Register a callback for each published PersonMessage."""
        self._subscribers.append(callback)

    def on_image(self, frame_bgr: np.ndarray, stamp: float) -> PersonMessage | None:
        """Process one frame; returns (and publishes) the message, or None if not confident."""
        result: Result = self.rec(frame_bgr, timestamp=stamp)
        if not result.person_found:
            return None
        msg = PersonMessage(
            stamp, self.frame_id, result.joints3d, result.translation, result.person_score,
            result.timings["total"], result.backend,
        )  # fmt: skip
        for callback in self._subscribers:
            callback(msg)
        return msg


def image_msg_to_bgr(msg) -> np.ndarray:
    """sensor_msgs/Image (bgr8 / rgb8, no cv_bridge needed) -> BGR uint8 array."""
    if msg.encoding not in ("bgr8", "rgb8"):
        raise ValueError(f"unsupported image encoding {msg.encoding!r}; publish bgr8 or rgb8")
    rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)
    frame = rows[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
    return np.ascontiguousarray(frame[..., ::-1] if msg.encoding == "rgb8" else frame)


def run_ros(core: MeshRecovery, args: argparse.Namespace) -> int:  # pragma: no cover - needs ROS 2
    """Spin a ROS 2 node around ``core`` (imports rclpy and message packages here only)."""
    import rclpy
    from geometry_msgs.msg import Point, PointStamped, Pose, PoseArray
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    rclpy.init()
    node = Node("hmrt_mesh_recovery")
    joints_pub = node.create_publisher(PoseArray, "/hmrt/joints", 10)
    root_pub = node.create_publisher(PointStamped, "/hmrt/root", 10)

    def publish(msg: PersonMessage) -> None:
        stamp = node.get_clock().now().to_msg()
        poses = PoseArray()
        poses.header.stamp, poses.header.frame_id = stamp, msg.frame_id
        for x, y, z in msg.joints.astype(float):
            pose = Pose()
            pose.position.x, pose.position.y, pose.position.z = x, y, z
            pose.orientation.w = 1.0
            poses.poses.append(pose)
        joints_pub.publish(poses)
        root = PointStamped()
        root.header = poses.header
        root.point = Point(x=float(msg.root[0]), y=float(msg.root[1]), z=float(msg.root[2]))
        root_pub.publish(root)

    core.subscribe(publish)

    def on_image(img: Image) -> None:
        stamp = img.header.stamp.sec + img.header.stamp.nanosec * 1e-9
        core.on_image(image_msg_to_bgr(img), stamp)

    # Queue depth 1: a slow model processes the newest image, never a backlog.
    node.create_subscription(Image, args.topic, on_image, 1)
    try:
        rclpy.spin(node)
    finally:
        node.destroy_node()
        rclpy.shutdown()
    return 0


def run_video(core: MeshRecovery, args: argparse.Namespace) -> int:
    """The non-ROS path: feed a video through the same callbacks, print JSON lines."""
    import cv2

    core.subscribe(lambda msg: print(msg.to_json()))
    cap = cv2.VideoCapture(args.video)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    count = 0
    while args.max_frames is None or count < args.max_frames:
        ok, frame = cap.read()
        if not ok:
            break
        core.on_image(frame, count / fps)
        count += 1
    cap.release()
    return 0 if count else 1


def main(argv: list[str] | None = None) -> int:
    """Run as a ROS 2 node (``--ros``) or on a video file (``--video``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="hmrt .onnx or .engine file")
    parser.add_argument("--ros", action="store_true", help="run as a ROS 2 node (needs rclpy)")
    parser.add_argument("--topic", default="/image_raw", help="input image topic (--ros)")
    parser.add_argument("--video", help="video file for the non-ROS path")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--backend", default="auto")
    parser.add_argument(
        "--detector", default="default", help="default (embedded), none, or a detector .onnx"
    )
    args = parser.parse_args(argv)
    core = MeshRecovery(args.model, backend=args.backend, detector=args.detector)
    if args.ros:
        try:
            import rclpy  # noqa: F401
        except ImportError:
            print("--ros needs ROS 2's rclpy: source your ROS 2 setup.bash first", file=sys.stderr)
            return 2
        return run_ros(core, args)
    if not args.video:
        parser.error("pass --video PATH (or --ros inside a ROS 2 environment)")
    return run_video(core, args)


if __name__ == "__main__":
    raise SystemExit(main())
