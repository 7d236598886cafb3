"""The terrain's material masks as mesh attributes, a material that shades by them, and the water plane.

The layout lives in ``terrain_look`` (no bpy); this module only writes it into Blender.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import terrain_look as look


def write_masks(mesh: bpy.types.Mesh, names: list[str], masks: np.ndarray) -> None:
    """(H, W, N) masks in [0, 1] -> float point attributes ``ws_<name>`` (one bulk write each)."""
    if masks.ndim != 3 or masks.shape[0] * masks.shape[1] != len(mesh.vertices) or masks.shape[2] != len(names):
        raise ValueError(f"masks {masks.shape} ({len(names)} names) do not fit a mesh of {len(mesh.vertices)} vertices")
    for k, name in enumerate(names):
        attribute = mesh.attributes.get(look.attribute_name(name))
        if attribute is None:
            attribute = mesh.attributes.new(look.attribute_name(name), "FLOAT", "POINT")
        attribute.data.foreach_set("value", np.ascontiguousarray(masks[..., k], dtype=np.float32).ravel())


def _node_material(name: str) -> bpy.types.Material:
    """The named material with an empty node tree (made once, rebuilt each time)."""
    material = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    if material.node_tree is None:  # Blender 4.x makes materials without nodes
        material.use_nodes = True
    material.node_tree.nodes.clear()
    return material


def terrain_material() -> bpy.types.Material:
    """Principled BSDF whose base colour is the layers' colours weighted by their attributes."""
    material = _node_material(look.MATERIAL_NAME)
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = nodes.new("ShaderNodeBsdfPrincipled")
    links.new(bsdf.outputs["BSDF"], nodes.new("ShaderNodeOutputMaterial").inputs["Surface"])
    total = None
    for layer, colour in look.LAYER_COLOURS.items():
        weight = nodes.new("ShaderNodeAttribute")
        weight.attribute_name = look.attribute_name(layer)
        scaled = nodes.new("ShaderNodeVectorMath")
        scaled.operation = "SCALE"
        scaled.inputs[0].default_value = colour
        links.new(weight.outputs["Fac"], scaled.inputs["Scale"])
        if total is not None:
            summed = nodes.new("ShaderNodeVectorMath")
            summed.operation = "ADD"
            links.new(total, summed.inputs[0])
            links.new(scaled.outputs["Vector"], summed.inputs[1])
            scaled = summed
        total = scaled.outputs["Vector"]
    links.new(total, bsdf.inputs["Base Color"])
    return material


def assign_terrain_material(obj: bpy.types.Object) -> None:
    """Give the terrain the material, unless the artist put another one on it."""
    mesh = obj.data
    if not mesh.materials:
        mesh.materials.append(terrain_material())
    elif mesh.materials[0] is not None and mesh.materials[0].name == look.MATERIAL_NAME:
        terrain_material()  # rebuilt in place: a newer add-on's layout


def update_water(scene: bpy.types.Scene, obj: bpy.types.Object, wanted: bool, width_m: float, depth_m: float) -> None:
    """A plane at sea level over the terrain (a child of it, so it follows); removed when not wanted."""
    name = look.water_name(obj.name)
    water = bpy.data.objects.get(name)
    if not wanted:
        if water is not None:
            mesh = water.data
            bpy.data.objects.remove(water)
            if mesh.users == 0:
                bpy.data.meshes.remove(mesh)
        return
    if water is None:
        water = bpy.data.objects.new(name, bpy.data.meshes.new(name))
        scene.collection.objects.link(water)
        water.parent = obj
    mesh = water.data
    mesh.clear_geometry()
    mesh.from_pydata(look.water_corners(width_m, depth_m), [], [(0, 1, 2, 3)])
    mesh.update()
    if not mesh.materials:
        material = _node_material(look.WATER_MATERIAL_NAME)
        bsdf = material.node_tree.nodes.new("ShaderNodeBsdfPrincipled")
        bsdf.inputs["Base Color"].default_value = look.WATER_COLOUR
        bsdf.inputs["Roughness"].default_value = 0.05
        material.node_tree.links.new(bsdf.outputs["BSDF"],
                                     material.node_tree.nodes.new("ShaderNodeOutputMaterial").inputs["Surface"])
        mesh.materials.append(material)
