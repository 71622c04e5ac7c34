"""The cad_perception lifecycle node: camera in, detections, CAD mesh markers and TF out.

Topics (relative, so namespaces and remapping work):
  in   image (sensor_msgs/Image) or, with use_compressed, image/compressed
       (sensor_msgs/CompressedImage); camera_info (sensor_msgs/CameraInfo)
  out  detections (vision_msgs/Detection3DArray), markers (visualization_msgs/MarkerArray),
       vision_info (vision_msgs/VisionInfo, transient local), debug_image (sensor_msgs/Image,
       with publish_debug_image), /tf (tf2_msgs/TFMessage, with publish_tf), /diagnostics,
       collision_object (moveit_msgs/CollisionObject, with publish_collision_objects)

Lifecycle: configure validates the parameters (parameters.py) and loads the Pipeline in the
worker thread; activate subscribes and publishes; deactivate unsubscribes; cleanup unloads.
With `autostart` (default) `main` configures and activates at once. Images are paired with
camera infos by stamp in the executor's callbacks; conversion, the Pipeline and publishing run
in the single worker thread, which always takes the newest pair (older ones are dropped and
counted). A bad input frame is skipped with a throttled warning and a diagnostics status.
"""

import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray, VisionInfo
from visualization_msgs.msg import MarkerArray

from cad_perception.pipeline.defaults import default_model_dir
from cad_perception.pipeline.overlay import draw_detections
from cad_perception.pipeline.pipeline import Pipeline
from cad_perception.ros.errors import InputError, ParameterError, Problem
from cad_perception.ros.image_conversion import (
    camera_info_to_intrinsics,
    compressed_to_rgb,
    image_to_rgb,
    rgb_to_image,
)
from cad_perception.ros.messages import (
    detections_message,
    diagnostics_message,
    markers_message,
    tf_message,
    vision_info_message,
)
from cad_perception.ros.parameters import NodeSettings, declare_parameters, read_settings
from cad_perception.ros.status import NodeStatus, StatusSnapshot
from cad_perception.ros.synchronizer import Pair, StampSynchronizer
from cad_perception.ros.worker import LatestWorker

NODE_NAME = "cad_perception"
CAMERA_INFO_TIMEOUT_S = 2.0
"""Images arriving this long without any camera_info raise Problem.NO_CAMERA_INFO."""
DIAGNOSTICS_PERIOD_S = 1.0
PIPELINE_LOAD_TIMEOUT_S = 600.0
"""Building the default CAD database or a TensorRT engine on first use takes minutes."""
OUTPUT_QOS = QoSProfile(depth=10)
LATCHED_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
TF_QOS = QoSProfile(depth=100)
INPUT_QOS = {"sensor_data": qos_profile_sensor_data, "reliable": QoSProfile(depth=5)}


@dataclass
class LoadedPipeline:
    """What the worker thread builds at configure; only it uses the pipeline (SQLite)."""

    pipeline: Pipeline
    method: str
    """VisionInfo.method: the model and its backend."""
    database: str
    database_version: int
    mesh_uris: dict[str, str]
    """Cache of CAD id -> file:// URI of its normalised GLB."""
    collision_scene: Any = None
    """ros.collision_objects.CollisionScene with publish_collision_objects, else None."""

    def mesh_uri(self, cad_id: str) -> str:
        if cad_id not in self.mesh_uris:
            self.mesh_uris[cad_id] = self.pipeline.db.get(cad_id).mesh_path.as_uri()
        return self.mesh_uris[cad_id]


class CadPerceptionNode(LifecycleNode):
    """The managed node (module docstring). Construct, then `autostart()` or drive its
    lifecycle through the standard services; `close()` before destroying it."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        declare_parameters(self)
        self.status = NodeStatus()
        self.settings: NodeSettings | None = None
        self._worker: LatestWorker[LoadedPipeline] | None = None
        self._backend = "none"
        self._vision_info = None
        self._outputs: dict[str, object] = {}
        self._inputs: list = []
        self._diagnostics_timer = None
        self._sync: StampSynchronizer | None = None
        self._sync_lock = threading.Lock()
        self._last_image_time = -float("inf")
        self._last_info_time = -float("inf")
        self._inputs_since = 0.0

    # Lifecycle.

    def autostart(self) -> bool:
        """Configure and activate when the `autostart` parameter is true; False if a transition
        failed (the error is logged)."""
        if self.get_parameter("autostart").value is False:
            return True
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            settings = read_settings(self)
        except ParameterError as err:
            self.get_logger().error(f"configure failed: {err}")
            return TransitionCallbackReturn.FAILURE
        worker = LatestWorker(
            lambda: _load_pipeline(settings),
            self._process,
            on_error=self._on_worker_error,
            teardown=lambda loaded: loaded.pipeline.db.close(),
            name="cad_perception_worker",
        )
        try:
            loaded = worker.start(timeout=PIPELINE_LOAD_TIMEOUT_S)
        except Exception as err:  # any reason the model or database cannot load
            worker.stop()
            self.get_logger().error(f"configure failed: cannot load the pipeline: {err}")
            return TransitionCallbackReturn.FAILURE
        self.settings, self._worker = settings, worker
        self._backend = loaded.pipeline.backend.name
        header = Header(stamp=self.get_clock().now().to_msg())
        self._vision_info = vision_info_message(
            header, loaded.method, loaded.database, loaded.database_version
        )
        self._create_publishers(settings)
        self.get_logger().info(f"configured: {loaded.method}, CAD database {loaded.database}")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers
        settings = self.settings
        assert settings is not None
        self._outputs["vision_info"].publish(self._vision_info)
        self._sync = StampSynchronizer(round(settings.sync_slop * 1e9))
        self._inputs_since = time.monotonic()
        qos = INPUT_QOS[settings.qos]
        if settings.use_compressed:
            image = self.create_subscription(
                CompressedImage, "image/compressed", self._on_image, qos
            )
        else:
            image = self.create_subscription(Image, "image", self._on_image, qos)
        info = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, qos)
        self._inputs = [image, info]
        self._diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self._on_timer)
        self.get_logger().info(
            f"active: {image.topic_name} + {info.topic_name} -> "
            f"{self._outputs['detections'].topic_name}"
        )
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unload()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        return super().on_shutdown(state)

    def close(self) -> None:
        """Stop the inputs and the worker and release the publishers (idempotent)."""
        self._stop_inputs()
        self._unload()

    # Health (any thread).

    @property
    def backend(self) -> str:
        """The inference backend the Pipeline runs on ("none" before configure)."""
        return self._backend

    def snapshot(self) -> StatusSnapshot:
        """The health now, as /diagnostics publishes it: counts since the node started,
        medians over the last frames."""
        with self._sync_lock:
            unpaired = self._sync.unpaired if self._sync is not None else 0
        dropped = self._worker.dropped if self._worker is not None else 0
        return self.status.snapshot(dropped=dropped, unpaired=unpaired)

    # Inputs (executor thread).

    def _on_image(self, message: Image | CompressedImage) -> None:
        self._last_image_time = time.monotonic()
        self._add(lambda sync, stamp: sync.add_image(stamp, message), message.header)

    def _on_camera_info(self, message: CameraInfo) -> None:
        self._last_info_time = time.monotonic()
        self._add(lambda sync, stamp: sync.add_info(stamp, message), message.header)

    def _add(self, add, header: Header) -> None:
        stamp = Time.from_msg(header.stamp).nanoseconds
        with self._sync_lock:
            if self._sync is None or self._worker is None:
                return
            try:
                pair = add(self._sync, stamp)
            except InputError as err:
                self._report(err.problem, str(err))
                return
        if pair is not None:
            self._worker.submit(pair)

    def _on_timer(self) -> None:
        now = time.monotonic()
        info_silent = now - max(self._last_info_time, self._inputs_since)
        images_arrive = now - self._last_image_time < CAMERA_INFO_TIMEOUT_S
        if images_arrive and info_silent > CAMERA_INFO_TIMEOUT_S:
            image, info = (s.topic_name for s in self._inputs)
            self._report(
                Problem.NO_CAMERA_INFO,
                f"images arrive on {image} but no camera_info on {info} for {info_silent:.0f} s; "
                "images are skipped until one arrives (remap camera_info to the camera's)",
            )
        self._publish_diagnostics()

    # Processing (worker thread).

    def _process(self, loaded: LoadedPipeline, pair: Pair) -> None:
        start = time.perf_counter()
        settings = self.settings
        assert settings is not None
        if isinstance(pair.image, CompressedImage):
            rgb = compressed_to_rgb(pair.image)
        else:
            rgb = image_to_rgb(pair.image)
        K = camera_info_to_intrinsics(pair.info, rgb.shape[:2])
        pipeline_start = time.perf_counter()
        detections = loaded.pipeline(rgb, K)
        pipeline_s = time.perf_counter() - pipeline_start

        header = pair.image.header
        outputs = self._outputs
        outputs["detections"].publish(detections_message(header, detections))
        categories = loaded.pipeline.categories
        markers = markers_message(header, detections, categories, loaded.mesh_uri)
        outputs["markers"].publish(markers)
        if settings.publish_tf:
            outputs["tf"].publish(tf_message(header, detections, settings.object_frame_prefix))
        if loaded.collision_scene is not None:
            for message in loaded.collision_scene.update(header, detections):
                outputs["collision_object"].publish(message)
        if settings.publish_debug_image:
            overlay = draw_detections(
                rgb, K, detections, categories, lambda c: loaded.pipeline.db.get(c).samples
            )
            outputs["debug_image"].publish(rgb_to_image(overlay, header))
        now_ns = self.get_clock().now().nanoseconds
        self.status.frame_done(
            latency_ms=(now_ns - pair.stamp_ns) / 1e6,
            pipeline_ms=pipeline_s * 1000.0,
            overhead_ms=(time.perf_counter() - start - pipeline_s) * 1000.0,
        )

    def _on_worker_error(self, err: Exception) -> None:
        if isinstance(err, InputError):
            self._report(err.problem, str(err))
        else:
            self._report(Problem.PIPELINE_FAILED, f"{type(err).__name__}: {err}")

    # Helpers.

    def _report(self, problem: Problem, message: str) -> None:
        if self.status.problem(problem, message):
            self.get_logger().warning(f"{problem.value}: {message}; frame skipped")

    def _publish_diagnostics(self) -> None:
        publisher = self._outputs.get("diagnostics")
        if publisher is None:
            return
        header = Header(stamp=self.get_clock().now().to_msg())
        node = self.get_fully_qualified_name()
        message = diagnostics_message(
            header, f"{NODE_NAME}: {node}", node, self._backend, self.snapshot()
        )
        publisher.publish(message)

    def _create_publishers(self, settings: NodeSettings) -> None:
        create = self.create_lifecycle_publisher
        self._outputs = {
            "detections": create(Detection3DArray, "detections", OUTPUT_QOS),
            "markers": create(MarkerArray, "markers", OUTPUT_QOS),
            "vision_info": create(VisionInfo, "vision_info", LATCHED_QOS),
            "diagnostics": create(DiagnosticArray, "/diagnostics", OUTPUT_QOS),
        }
        if settings.publish_tf:
            self._outputs["tf"] = create(TFMessage, "/tf", TF_QOS)
        if settings.publish_debug_image:
            self._outputs["debug_image"] = create(Image, "debug_image", QoSProfile(depth=2))
        if settings.publish_collision_objects:
            from moveit_msgs.msg import CollisionObject  # only needed (and built) for planning

            self._outputs["collision_object"] = create(
                CollisionObject, "collision_object", QoSProfile(depth=100)
            )

    def _stop_inputs(self) -> None:
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs = []
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        with self._sync_lock:
            self._sync = None

    def _unload(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        self.settings = None


def _load_pipeline(settings: NodeSettings) -> LoadedPipeline:
    """The Pipeline of `settings` ('' model_dir / cad_db = the shipped ones)."""
    model_dir = Path(settings.model_dir) if settings.model_dir else default_model_dir()
    pipeline = Pipeline.from_dirs(
        model_dir,
        settings.cad_db or None,
        backend=settings.backend,
        device=settings.device or None,
        score_threshold=settings.score_threshold,
        max_detections=settings.max_detections,
        top_k=settings.top_k,
    )
    name, version = pipeline.backend.encoder
    method = f"ROCA {model_dir.resolve()} on {pipeline.backend.name} (CAD encoder {name}@{version})"
    db = pipeline.db
    scene = None
    if settings.publish_collision_objects:
        from cad_perception.ros.collision_objects import CollisionScene  # needs moveit_msgs

        scene = CollisionScene(db, max_triangles=settings.collision_max_triangles)
    return LoadedPipeline(pipeline, method, str(db.root.resolve()), db.version, {}, scene)


def main(args: list[str] | None = None) -> int:
    """Console script `cad_perception_node`: run the node until Ctrl-C; exit status 1 when
    autostart fails (bad parameters or a model or database that does not load)."""
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    rclpy.init(args=args)
    node = CadPerceptionNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    status = 0
    try:
        if not node.autostart():
            status = 1
        else:
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
