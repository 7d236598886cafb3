"""The Caves panel's settings, ``Scene.worldsculpt.caves``: the region, the voxels, the sliders and the brush."""

from __future__ import annotations

import bpy

from . import live, menus


class WSC_CaveSettings(bpy.types.PropertyGroup):
    __slots__ = ()
    size: bpy.props.IntProperty(name="Chunks across", default=4, min=1, max=8,
                                description="The region is this many chunks east-west and north-south, centred "
                                            "on the 3D cursor")
    depth: bpy.props.IntProperty(name="Depth", default=1, min=1, max=8,
                                 description="Chunk layers below the lowest ground in the region")
    voxel_size: menus.enum("voxel_size", name="Voxel size")
    voxel_size_name: bpy.props.StringProperty(default="", options={"HIDDEN"})
    mesh_style: menus.enum("voxel_mesh", name="Mesh")
    mesh_style_name: bpy.props.StringProperty(default="", options={"HIDDEN"})
    coarse_far: bpy.props.BoolProperty(name="Coarser far chunks", default=False,
                                       description="Chunks away from the 3D cursor are meshed a level coarser "
                                                   "per ring of chunks (fewer faces)")
    lod_radius: bpy.props.IntProperty(name="Full detail within", default=1, min=0, max=8,
                                      description="Chunks this many chunks around the cursor's stay at full "
                                                  "detail")
    source: menus.enum("voxel_source", name="Chunks")
    source_name: bpy.props.StringProperty(default="", options={"HIDDEN"})
    cave_density: bpy.props.FloatProperty(name="Cave density", default=0.5, min=0.0, max=1.0,
                                          description="How much of the ground the cave generator hollows out")
    overhang: bpy.props.FloatProperty(name="Overhangs", default=0.5, min=0.0, max=1.0,
                                      description="How much overhangs and arches the cave generator makes")
    passages: bpy.props.FloatProperty(name="Passages", default=0.5, min=0.0, max=1.0,
                                      description="How far the generated caves are joined into systems by passages "
                                                  "through the deep rock, as water joins cave chambers (0: as drawn)")
    memory: bpy.props.BoolProperty(name="World memory", default=False,
                                    description="Generated chunks read the world's voxel memory, which the voxel "
                                                "edits you committed write: beside them, new caves follow yours")
    cave_density_from_memory: bpy.props.BoolProperty(
        name="Density from memory", default=True,
        description="Beside your committed voxel edits, the cave density is the one the world's memory reads from "
                    "them; elsewhere the generator's own")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    cover: menus.enum("ground_cover", name="Ground cover")
    cover_name: bpy.props.StringProperty(default="", options={"HIDDEN"})
    radius: bpy.props.FloatProperty(name="Radius", default=4.0, min=0.5, max=64.0, unit="LENGTH",
                                    description="Radius of the voxel brush around its stroke")
    fill_material: menus.enum("fill_material", name="Fill with")
    fill_material_name: bpy.props.StringProperty(default="", options={"HIDDEN"})
    status = live.field("caves_status")  # the session's, not the scene's: undo and saved files leave it
    progress = live.field("caves_progress")
