"""Detections -> moveit_msgs/CollisionObject messages for MoveIt's planning scene.

Each detected object becomes an ADD of its retrieved CAD mesh in metres (the canonical mesh
scaled by s per axis, decimated to a bounded triangle count) at the detection's pose, in the
image's header frame; `type.key` is the CAD id. Ids stay stable from frame to frame by a small
nearest-neighbour association: a detection takes the id of the closest object of its category
published last frame within `match_distance` metres (highest scores first), otherwise a new id.
Objects of the last frame that found no detection are sent as REMOVE.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import trimesh
from geometry_msgs.msg import Point, Pose
from moveit_msgs.msg import CollisionObject
from object_recognition_msgs.msg import ObjectType
from shape_msgs.msg import Mesh, MeshTriangle
from std_msgs.msg import Header

from cad_perception.cad.database import CadDatabase
from cad_perception.cad.decimate import DEFAULT_MAX_TRIANGLES, decimate
from cad_perception.pipeline.detection import Detection
from cad_perception.ros.messages import detection_pose

DEFAULT_ID_PREFIX = "cad_perception/"
DEFAULT_MATCH_DISTANCE_M = 0.5


@dataclass
class _Tracked:
    category: str
    t: np.ndarray


class CollisionScene:
    """Turns each frame's detections into the CollisionObject messages of that frame."""

    def __init__(
        self,
        db: CadDatabase,
        *,
        id_prefix: str = DEFAULT_ID_PREFIX,
        max_triangles: int = DEFAULT_MAX_TRIANGLES,
        match_distance: float = DEFAULT_MATCH_DISTANCE_M,
    ):
        if match_distance <= 0:
            raise ValueError(f"match_distance must be > 0, got {match_distance}")
        self.db = db
        self.id_prefix = id_prefix
        self.max_triangles = max_triangles
        self.match_distance = match_distance
        self._objects: dict[str, _Tracked] = {}
        self._next_index = 0
        self._meshes: dict[str, trimesh.Trimesh] = {}
        self._db_description = json.dumps({"database": str(db.root), "version": db.version})

    def update(self, header: Header, detections: Sequence[Detection]) -> list[CollisionObject]:
        """ADD messages for `detections` (those with a CAD) and REMOVE messages for the objects
        of the previous frame that are gone; the internal state moves to this frame."""
        with_cad = sorted((d for d in detections if d.cad_id), key=lambda d: -d.score)
        ids = self._associate(with_cad)
        messages = [
            self._add(header, object_id, d) for object_id, d in zip(ids, with_cad, strict=True)
        ]
        gone = [object_id for object_id in self._objects if object_id not in ids]
        messages += [self._remove(header, object_id) for object_id in gone]
        self._objects = {
            object_id: _Tracked(d.category, np.asarray(d.t, dtype=np.float64))
            for object_id, d in zip(ids, with_cad, strict=True)
        }
        return messages

    def clear(self, header: Header) -> list[CollisionObject]:
        """REMOVE messages for every object published so far (e.g. when deactivating)."""
        messages = [self._remove(header, object_id) for object_id in self._objects]
        self._objects = {}
        return messages

    def _associate(self, detections: Sequence[Detection]) -> list[str]:
        free = dict(self._objects)
        ids = []
        for detection in detections:
            best, best_distance = None, self.match_distance
            for object_id, tracked in free.items():
                distance = float(np.linalg.norm(tracked.t - detection.t))
                if tracked.category == detection.category and distance <= best_distance:
                    best, best_distance = object_id, distance
            if best is None:
                best = f"{self.id_prefix}{detection.category}_{self._next_index}"
                self._next_index += 1
            else:
                del free[best]
            ids.append(best)
        return ids

    def _add(self, header: Header, object_id: str, detection: Detection) -> CollisionObject:
        canonical = self._canonical_mesh(detection.cad_id)
        vertices = np.asarray(canonical.vertices) * np.asarray(detection.s, dtype=np.float64)
        mesh = Mesh(
            triangles=[MeshTriangle(vertex_indices=[int(i) for i in f]) for f in canonical.faces],
            vertices=[Point(x=float(x), y=float(y), z=float(z)) for x, y, z in vertices],
        )
        return CollisionObject(
            header=header,
            pose=detection_pose(detection),
            id=object_id,
            type=ObjectType(key=detection.cad_id, db=self._db_description),
            meshes=[mesh],
            mesh_poses=[Pose()],  # the identity: the mesh sits in the object's frame
            operation=CollisionObject.ADD,
        )

    def _remove(self, header: Header, object_id: str) -> CollisionObject:
        return CollisionObject(header=header, id=object_id, operation=CollisionObject.REMOVE)

    def _canonical_mesh(self, cad_id: str) -> trimesh.Trimesh:
        if cad_id not in self._meshes:
            source = trimesh.load(self.db.get(cad_id).mesh_path, force="mesh")
            self._meshes[cad_id] = decimate(source, self.max_triangles)
        return self._meshes[cad_id]
