"""A bpy script (run in a subprocess) that writes one tiny scene using every kind of dependency the farm bundle must
carry, renders it once here as the reference, and prints what it wrote as JSON.

Layout under ROOT (argv after ``--``: ROOT as JSON string):
    project/shot.blend        the scene (Cycles CPU, 1 sample, an orthographic camera over a row of tiles)
    project/tex/...           relative textures, a UDIM set, an image sequence, the OSL script, a font
    shared/par.png            reached as //../shared/par.png (outside the project, relative)
    C:\\tex\\t.png, D:\\tex\\t.png   paths of a scene saved on Windows (missing on this machine)
    abs/...                   absolute paths: a texture, the HDRI, an Alembic cache, a movie clip, a sound, VSE media,
                              an OpenVDB volume, a USD stage (root layer naming its mesh layer relatively), an IES
                              profile of a light, the font of a VSE text strip, a fluid cache folder
    project/blendcache_shot/  a particle system's disk cache (and lib/blendcache_lib/ the library's own)
    lib/lib.blend             a linked library with its own texture (lib/libtex.png, relative to the library)
Each tile is one kind, an emission of a flat colour: the reference render holds the right colour in every tile.
"""

import json
import os
import struct
import sys
import wave
import zlib

import bpy

ROOT = json.loads(sys.argv[sys.argv.index("--") + 1])
TILE = 8
KINDS = ["relative", "parent", "absolute", "udim", "sequence", "library", "packed", "osl", "alembic", "font",
         "gn_bake", "volume", "ies", "usd"]
COLOURS = {
    "relative": (230, 30, 30), "parent": (30, 200, 40), "absolute": (40, 60, 230), "udim": (230, 200, 20),
    "sequence": (200, 30, 200), "library": (20, 200, 200), "packed": (250, 130, 20), "world": (90, 90, 90),
}


def png(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    raw = b"".join(b"\0" + bytes(rgb) * 4 for _ in range(4))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
                 + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def p(*parts):
    return os.path.join(ROOT, *parts)


def emission(name, image=None, script=None, colour=None):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    emit = nodes.new("ShaderNodeEmission")
    links.new(emit.outputs[0], out.inputs[0])
    if colour is not None:
        emit.inputs["Color"].default_value = (*colour, 1.0)
    if image is not None:
        tex = nodes.new("ShaderNodeTexImage")
        tex.image = image
        tex.interpolation = "Closest"
        links.new(tex.outputs["Color"], emit.inputs["Color"])
    if script is not None:
        node = nodes.new("ShaderNodeScript")
        node.mode = "EXTERNAL"
        node.filepath = script
        node.outputs.new("NodeSocketColor", "Out")  # what compiling would add (oslquery is not in the wheel)
        links.new(node.outputs[0], emit.inputs["Color"])
    return mat


def tile(index, mat=None, obj=None):
    if obj is None:
        bpy.ops.mesh.primitive_plane_add(size=TILE * 0.1)
        obj = bpy.context.object
    obj.location = ((index + 0.5) * TILE * 0.1, 0.0, 0.0)
    if mat is not None:
        obj.data.materials.clear()
        obj.data.materials.append(mat)
    return obj


def image(path, source="FILE"):
    img = bpy.data.images.load(path)
    img.source = source
    return img


def bake(obj, mod):
    with bpy.context.temp_override(object=obj, active_object=obj):
        bpy.ops.object.geometry_node_bake_single(session_uid=obj.session_uid, modifier_name=mod.name,
                                                 bake_id=mod.bakes[0].bake_id)


def baked_cube(name, size, step_type, directory, setup=None):
    """An object whose Geometry Nodes tree passes a cube through one node (``setup`` sets it up) and bakes the result
    to disk in ``directory``, baked."""
    obj = bpy.data.objects.new(name, bpy.data.meshes.new(name))
    bpy.context.scene.collection.objects.link(obj)
    tree = bpy.data.node_groups.new(name + "Tree", "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    cube = tree.nodes.new("GeometryNodeMeshCube")
    cube.inputs["Size"].default_value = size
    step = tree.nodes.new(step_type)
    if setup is not None:
        setup(step)
    bake_node = tree.nodes.new("GeometryNodeBake")
    bake_node.bake_items.new("GEOMETRY", "Geometry")
    chain = [cube, step, bake_node, tree.nodes.new("NodeGroupOutput")]
    for a, b in zip(chain, chain[1:]):
        tree.links.new(a.outputs[0], b.inputs[0])
    mod = obj.modifiers.new(name, "NODES")
    mod.node_group = tree
    mod.bake_target = "DISK"
    mod.bake_directory = directory
    mod.bakes[0].bake_mode = "STILL"
    bake(obj, mod)
    return obj, mod, cube, step


# --- the library, with its own relative texture ---------------------------------------------------------------
bpy.ops.wm.read_factory_settings(use_empty=True)
png(p("lib", "libtex.png"), COLOURS["library"])
bpy.ops.mesh.primitive_plane_add(size=TILE * 0.1)
bpy.context.object.name = "LibTile"
bpy.context.object.data.materials.append(emission("LibMat", image(p("lib", "libtex.png"))))
bpy.ops.wm.save_as_mainfile(filepath=p("lib", "lib.blend"))
bpy.ops.file.make_paths_relative()
bpy.ops.wm.save_as_mainfile(filepath=p("lib", "lib.blend"))


def particle_cache(obj):
    """A particle system baked to disk (//blendcache_<blend name>/), its particles not rendered."""
    obj.modifiers.new("Particles", "PARTICLE_SYSTEM")
    system = obj.particle_systems[0]
    system.settings.count, system.settings.lifetime = 3, 1
    system.settings.frame_start = system.settings.frame_end = 1
    system.settings.render_type = "NONE"
    system.point_cache.use_disk_cache = True
    with bpy.context.temp_override(point_cache=system.point_cache):
        bpy.ops.ptcache.bake(bake=True)


particle_cache(bpy.data.objects["LibTile"])
bpy.ops.wm.save_as_mainfile(filepath=p("lib", "lib.blend"))

# --- the files the scene uses ------------------------------------------------------------------------------
bpy.ops.wm.read_factory_settings(use_empty=True)
files = {
    "relative": png(p("project", "tex", "rel.png"), COLOURS["relative"]),
    "parent": png(p("shared", "par.png"), COLOURS["parent"]),
    "absolute": png(p("abs", "tex", "abs.png"), COLOURS["absolute"]),
    "udim": [png(p("project", "tex", f"udim.{t}.png"), COLOURS["udim"]) for t in (1001, 1002)],
    "sequence": [png(p("project", "seq", f"plate.{n:04d}.png"), COLOURS["sequence"] if n == 1 else (0, 0, 0))
                 for n in (1, 2)],
    "packed": png(p("project", "tex", "packed.png"), COLOURS["packed"]),
    "hdri": p("abs", "hdri", "sky.hdr"),
    "osl": p("project", "tex", "tint.osl"),
    "font": p("project", "tex", "font.woff2"),
    "alembic": p("abs", "cache", "tile.abc"),
    "clip": png(p("abs", "clip", "clip.0001.png"), (1, 2, 3)),
    "sound": p("abs", "audio", "tone.wav"),
    "strip": png(p("abs", "vse", "strip.png"), (4, 5, 6)),
    "fluid": p("abs", "fluid"),
    "fluid_rel": p("project", "fluid"),
    "vdb": p("abs", "vol", "cloud.vdb"),
    "ies": p("project", "tex", "beam.ies"),
    "ies_light": p("abs", "ies", "lamp.ies"),
    "usd": p("abs", "usd", "root.usda"),
    "usd_mesh": p("abs", "usd", "mesh.usda"),
    "usd_bad": p("project", "usd", "bad.usda"),
    "caption": p("abs", "fonts", "caption.woff2"),
}
with open(files["osl"], "w") as fh:
    fh.write("shader tint(output color Out = color(0.2, 0.9, 0.5)) { Out = color(0.2, 0.9, 0.5); }\n")
os.makedirs(os.path.dirname(files["sound"]), exist_ok=True)
with wave.open(files["sound"], "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(8000)
    w.writeframes(b"\0\0" * 800)

# IES profiles: 300 cd straight down, less to the side (text files).
for ies in (files["ies"], files["ies_light"]):
    os.makedirs(os.path.dirname(ies), exist_ok=True)
    with open(ies, "w") as fh:
        fh.write("IESNA:LM-63-1995\nTILT=NONE\n1 1000 1 3 1 1 2 0 0 0\n1 1 0\n0 90 180\n0\n300 100 10\n")

# An HDRI: a flat grey Radiance file written by Blender itself.
os.makedirs(os.path.dirname(files["hdri"]), exist_ok=True)
sky = bpy.data.images.new("sky", 4, 4, float_buffer=True)
sky.pixels = [c / 255 for _ in range(16) for c in (*COLOURS["world"], 255)]
sky.filepath_raw = files["hdri"]
sky.file_format = "HDR"
sky.save()
bpy.data.images.remove(sky)

# A font: the one Blender ships, copied into the project (the scene must not depend on Blender's install).
shipped = [os.path.join(bpy.utils.system_resource("DATAFILES", path="fonts"), "DejaVuSansMono.woff2")]
for copy in (files["font"], files["caption"]):
    os.makedirs(os.path.dirname(copy), exist_ok=True)
    with open(shipped[0], "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read())

# The Alembic cache: a plane exported alone, then read back through a Mesh Sequence Cache whose own mesh is empty.
bpy.ops.mesh.primitive_plane_add(size=TILE * 0.1)
os.makedirs(os.path.dirname(files["alembic"]), exist_ok=True)
bpy.ops.wm.alembic_export(filepath=files["alembic"], selected=True, start=1, end=1)
# The USD stage: the same plane in a layer of its own, which the root layer names as a sublayer.
bpy.ops.wm.usd_export(filepath=files["usd_mesh"], selected_objects_only=True)
with open(files["usd"], "w") as fh:
    fh.write("#usda 1.0\n(\n    subLayers = [@./mesh.usda@]\n)\n")
# A layer inside the project the bundle cannot carry as it is (no scene names it; the refusals are tested on it).
os.makedirs(os.path.dirname(files["usd_bad"]), exist_ok=True)
with open(files["usd_bad"], "w") as fh:
    fh.write("#usda 1.0\n(\n    subLayers = [@../../abs/usd/mesh.usda@, @/nowhere/x.usda@, @./gone.usda@]\n)\n")
bpy.ops.object.delete()

# An OpenVDB file written by Blender itself: a Geometry Nodes bake of a cube turned into a fog volume.
vdb_obj, _mod, _cube, _step = baked_cube(
    "VDBSource", (TILE * 0.1,) * 3, "GeometryNodeMeshToVolume", p("vdbbake"),
    lambda step: setattr(step.inputs["Voxel Amount"], "default_value", 4))
[baked] = [os.path.join(d, f) for d, _, names in os.walk(p("vdbbake")) for f in names if f.endswith(".vdb")]
os.makedirs(os.path.dirname(files["vdb"]), exist_ok=True)
os.replace(baked, files["vdb"])
bpy.data.node_groups.remove(vdb_obj.modifiers[0].node_group)
bpy.data.objects.remove(vdb_obj)

# --- the scene ----------------------------------------------------------------------------------------------
scene = bpy.context.scene
scene.name = "Kinds"
render = scene.render
render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = 1
scene.cycles.use_denoising = False
scene.cycles.shading_system = True  # OSL, so the script's colour is in the picture
scene.cycles.volume_biased = True  # the unbiased volume integrator takes seconds on one tile
scene.view_settings.view_transform = "Standard"
render.resolution_x, render.resolution_y = TILE * len(KINDS), TILE
render.resolution_percentage = 100
render.filter_size = 0.01
render.image_settings.file_format = "PNG"
render.filepath = "//render/kinds_####"
scene.frame_start = scene.frame_end = 1

cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
cam.data.type = "ORTHO"
cam.data.ortho_scale = TILE * len(KINDS) * 0.1
cam.location = (TILE * len(KINDS) * 0.05, 0.0, 5.0)
scene.collection.objects.link(cam)
scene.camera = cam

world = bpy.data.worlds.new("World")
world.use_nodes = True
env = world.node_tree.nodes.new("ShaderNodeTexEnvironment")
env.image = image(files["hdri"])
world.node_tree.links.new(env.outputs["Color"], world.node_tree.nodes["Background"].inputs["Color"])
world.cycles.sampling_method = "NONE"  # an importance map costs seconds per render at this size
scene.world = world

bpy.ops.wm.save_as_mainfile(filepath=p("project", "shot.blend"))  # so // paths mean the project folder
tile(0, emission("relative", image(files["relative"])))
tile(1, emission("parent", image(files["parent"])))
tile(2, emission("absolute", image(files["absolute"])))
tile(3, emission("udim", image(files["udim"][0], "TILED")))
tile(4, emission("sequence", image(files["sequence"][0], "SEQUENCE")))
packed = image(files["packed"])
packed.pack()
tile(6, emission("packed", packed))
tile(7, emission("osl", script=files["osl"]))

bpy.ops.wm.alembic_import(filepath=files["alembic"], as_background_job=False)
cache_obj = bpy.context.selected_objects[0]
cache_obj.data = bpy.data.meshes.new("empty")  # without its cache the tile shows nothing
mod = cache_obj.modifiers.new("cache", "MESH_SEQUENCE_CACHE")
mod.cache_file = bpy.data.cache_files[0]
mod.object_path = "/Plane/Plane"
cache_obj.data.materials.append(emission("alembic", colour=(1.0, 0.5, 0.0)))
tile(8, obj=cache_obj)

font_curve = bpy.data.curves.new("Label", "FONT")
font_curve.body = "W"
font_curve.font = bpy.data.fonts.load(files["font"])
font_curve.size = TILE * 0.15
label = bpy.data.objects.new("Label", font_curve)
scene.collection.objects.link(label)
label.location = (9.05 * TILE * 0.1, -0.35, 0.0)
label.data.materials.append(emission("font", colour=(0.0, 0.3, 1.0)))

# A Geometry Nodes bake on disk (relative folder): a cube baked, then the live cube shrunk to nothing.
gn_material = emission("gn_bake", colour=(0.6, 0.0, 1.0))
gn_obj, gn_mod, gn_cube, _step = baked_cube(
    "GNTile", (TILE * 0.1, TILE * 0.1, 0.01), "GeometryNodeSetMaterial", "//bakes/",
    lambda step: setattr(step.inputs["Material"], "default_value", gn_material))
tile(10, obj=gn_obj)
gn_cube.inputs["Size"].default_value = (0.0, 0.0, 0.0)

# An OpenVDB volume (absolute path) glowing where its density is.
volume = bpy.data.volumes.new("cloud")
volume.filepath = files["vdb"]
vol_mat = bpy.data.materials.new("volume")
vol_mat.use_nodes = True
vol_nodes = vol_mat.node_tree.nodes
vol_nodes.clear()
vol_emit = vol_nodes.new("ShaderNodeEmission")
vol_emit.inputs["Color"].default_value = (0.0, 1.0, 0.3, 1.0)
vol_mat.node_tree.links.new(vol_nodes.new("ShaderNodeVolumeInfo").outputs["Density"], vol_emit.inputs["Strength"])
vol_mat.node_tree.links.new(vol_emit.outputs[0], vol_nodes.new("ShaderNodeOutputMaterial").inputs["Volume"])
volume.materials.append(vol_mat)
vol_obj = bpy.data.objects.new("Cloud", volume)
scene.collection.objects.link(vol_obj)
tile(11, obj=vol_obj)

# An IES profile in a material (relative; BAT reads IES files of lights only), seen straight down its beam, and one
# of a light (absolute; the light lights nothing here, every tile being an emission).
ies_mat = emission("ies", colour=(1.0, 0.2, 0.6))
ies_node = ies_mat.node_tree.nodes.new("ShaderNodeTexIES")
ies_node.mode = "EXTERNAL"
ies_node.filepath = files["ies"]
ies_node.inputs["Strength"].default_value = 0.01
down = ies_mat.node_tree.nodes.new("ShaderNodeCombineXYZ")
down.inputs["Z"].default_value = -1.0
ies_mat.node_tree.links.new(down.outputs[0], ies_node.inputs["Vector"])
ies_mat.node_tree.links.new(ies_node.outputs["Fac"], ies_mat.node_tree.nodes["Emission"].inputs["Strength"])
tile(12, ies_mat)
lamp = bpy.data.lights.new("Lamp", "POINT")
lamp.use_nodes = True
lamp_ies = lamp.node_tree.nodes.new("ShaderNodeTexIES")
lamp_ies.mode = "EXTERNAL"
lamp_ies.filepath = files["ies_light"]
lamp.node_tree.links.new(lamp_ies.outputs["Fac"], lamp.node_tree.nodes["Emission"].inputs["Strength"])
lamp_obj = bpy.data.objects.new("Lamp", lamp)
lamp_obj.location = (0.0, 3.0, 2.0)
scene.collection.objects.link(lamp_obj)

# The USD stage through a Mesh Sequence Cache: the plane comes from the sublayer, so without it the tile is empty.
bpy.ops.cachefile.open(filepath=files["usd"])
usd_obj = bpy.data.objects.new("USDTile", bpy.data.meshes.new("usd"))
scene.collection.objects.link(usd_obj)
usd_mod = usd_obj.modifiers.new("usd", "MESH_SEQUENCE_CACHE")
usd_mod.cache_file = next(c for c in bpy.data.cache_files if c.filepath.endswith(".usda"))
usd_mod.object_path = "/root/Plane/Plane"
usd_obj.data.materials.append(emission("usd", colour=(0.9, 0.9, 0.1)))
tile(13, obj=usd_obj)

# A particle system's disk cache beside the scene (//blendcache_shot/), its emitter not rendered.
bpy.ops.mesh.primitive_plane_add(size=0.2, location=(0, -3, 0))
bpy.context.object.hide_render = True
bpy.context.object.name = "Emitter"
particle_cache(bpy.context.object)

# A fluid domain whose cache folder is absolute (not rendered: the bundle and the proof must carry it).
bpy.ops.mesh.primitive_cube_add(size=0.2, location=(0, 3, 0))
domain = bpy.context.object
domain.hide_render = True
fluid = domain.modifiers.new("Fluid", "FLUID")
fluid.show_viewport = fluid.show_render = False  # never simulated here (Mantaflow in the wheel is noisy)
fluid.fluid_type = "DOMAIN"
fluid.domain_settings.cache_directory = files["fluid"]
# and one whose cache folder is relative
bpy.ops.mesh.primitive_cube_add(size=0.2, location=(0, 4, 0))
bpy.context.object.hide_render = True
fluid_rel = bpy.context.object.modifiers.new("Fluid", "FLUID")
fluid_rel.show_viewport = fluid_rel.show_render = False
fluid_rel.fluid_type = "DOMAIN"
fluid_rel.domain_settings.cache_directory = "//fluid"
for folder in (files["fluid"], files["fluid_rel"]):
    os.makedirs(os.path.join(folder, "config"), exist_ok=True)
    with open(os.path.join(folder, "config", "config_0001.uni"), "wb") as fh:
        fh.write(b"not a real cache")

clip = bpy.data.movieclips.load(files["clip"])
seq = scene.sequence_editor_create()
seq.strips.new_image("still", files["strip"], 1, 1)
seq.strips.new_sound("tone", files["sound"], 2, 1)
caption = seq.strips.new_effect("caption", "TEXT", 3, frame_start=1, length=1)
caption.text = "W"
caption.font = bpy.data.fonts.load(files["caption"])
render.use_sequencer = False  # the strips are dependencies; the 3D tiles are the picture
scene["clip"] = clip  # keep the clip used

with bpy.data.libraries.load(p("lib", "lib.blend"), link=True, relative=True) as (_src, dst):
    dst.objects = ["LibTile"]
lib_obj = dst.objects[0]
scene.collection.objects.link(lib_obj)
holder = bpy.data.objects.new("LibHolder", None)
scene.collection.objects.link(holder)
holder.instance_type = "COLLECTION"
lib_obj.hide_render = False
# A linked object cannot move: place an empty carrying it, instanced from a collection, over tile 5.
coll = bpy.data.collections.new("LibColl")
coll.objects.link(lib_obj)
scene.collection.objects.unlink(lib_obj)
holder.instance_collection = coll
holder.location = (5.5 * TILE * 0.1, 0.0, 0.0)

# absolute where asked, relative elsewhere (make_paths_relative would touch them all)
for img in bpy.data.images:
    if img.filepath and not img.packed_file and os.path.isabs(img.filepath):
        img.filepath = bpy.path.relpath(img.filepath) if img.filepath.startswith(p("project")) else img.filepath
# Saved on Windows: two drives holding the same folder and name (missing here, named as written).
for drive in "CD":
    win = bpy.data.images.new(f"win{drive}", 4, 4)
    win.source = "FILE"
    win.filepath = drive + ":\\tex\\t.png"
    win.use_fake_user = True
images = {i.name: i for i in bpy.data.images}
images["par.png"].filepath = "//../shared/par.png"

bpy.ops.wm.save_as_mainfile(filepath=p("project", "shot.blend"))
bpy.ops.render.render(write_still=True)
reference = p("reference.png")
bpy.data.images["Render Result"].save_render(reference)

bpy.data.objects.remove(bpy.data.objects["Emitter"])  # the files below would name a cache of their own
# A second file: the same Geometry Nodes bake, in an absolute folder outside its project.
gn_mod.bake_directory = p("abs", "gnbakes")
os.makedirs(p("gnproject"), exist_ok=True)
bpy.ops.wm.save_as_mainfile(filepath=p("gnproject", "gn_abs.blend"), copy=True)
gn_cube.inputs["Size"].default_value = (TILE * 0.1, TILE * 0.1, 0.01)
bake(gn_obj, gn_mod)
# Variants for the output and hardware checks, saved beside the scene (same paths, one setting changed each).
gn_mod.bake_directory = "//bakes/"
scene.cycles.shading_system = False  # the variants' renders check files and views, not the script's colour
variants = {}


def variant(name, apply, undo):
    apply()
    variants[name] = p("project", f"{name}.blend")
    bpy.ops.wm.save_as_mainfile(filepath=variants[name], copy=True)
    undo()


image_settings = render.image_settings
variant("movie", lambda: setattr(image_settings, "media_type", "VIDEO"),
        lambda: (setattr(image_settings, "media_type", "IMAGE"), setattr(image_settings, "file_format", "PNG")))
variant("stereo",
        lambda: (setattr(render, "use_multiview", True), setattr(image_settings, "views_format", "INDIVIDUAL")),
        lambda: setattr(render, "use_multiview", False))
variant("gpu", lambda: setattr(scene.cycles, "device", "GPU"), lambda: setattr(scene.cycles, "device", "CPU"))
variant("eevee", lambda: setattr(render, "engine", "BLENDER_EEVEE"), lambda: setattr(render, "engine", "CYCLES"))


class StudioTools(bpy.types.PropertyGroup):
    strength: bpy.props.FloatProperty()


bpy.utils.register_class(StudioTools)
bpy.types.Scene.studio_tools = bpy.props.PointerProperty(type=StudioTools)
scene.studio_tools.strength = 2.0
variant("addon", lambda: setattr(render, "filepath", "//render/{blend_name}/kinds_####"), lambda: None)

print("TETHER_KINDS " + json.dumps({"variants": variants, "blend": p("project", "shot.blend"),
                                    "gn_abs": p("gnproject", "gn_abs.blend"),
                                    "reference": reference, "tile": TILE, "kinds": KINDS, "files": files}))
