"""A bpy script (run in a subprocess) that writes one tiny scene using every kind of dependency the farm bundle must
carry, renders it once here as the reference, and prints what it wrote as JSON.

Layout under ROOT (argv after ``--``: ROOT as JSON string):
    project/shot.blend        the scene (Cycles CPU, 1 sample, an orthographic camera over a row of tiles)
    project/tex/...           relative textures, a UDIM set, an image sequence, the OSL script, a font
    shared/par.png            reached as //../shared/par.png (outside the project, relative)
    C:\\tex\\t.png, D:\\tex\\t.png   paths of a scene saved on Windows (missing on this machine)
    abs/...                   absolute paths: a texture, the HDRI, an Alembic cache, a movie clip, a sound, VSE media
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
         "gn_bake"]
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


# --- the library, with its own relative texture ---------------------------------------------------------------
bpy.ops.wm.read_factory_settings(use_empty=True)
png(p("lib", "libtex.png"), COLOURS["library"])
bpy.ops.mesh.primitive_plane_add(size=TILE * 0.1)
bpy.context.object.name = "LibTile"
bpy.context.object.data.materials.append(emission("LibMat", image(p("lib", "libtex.png"))))
bpy.ops.wm.save_as_mainfile(filepath=p("lib", "lib.blend"))
bpy.ops.file.make_paths_relative()
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
}
with open(files["osl"], "w") as fh:
    fh.write("shader tint(output color Out = color(0.2, 0.9, 0.5)) { Out = color(0.2, 0.9, 0.5); }\n")
os.makedirs(os.path.dirname(files["sound"]), exist_ok=True)
with wave.open(files["sound"], "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(8000)
    w.writeframes(b"\0\0" * 800)

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
with open(shipped[0], "rb") as src, open(files["font"], "wb") as dst:
    dst.write(src.read())

# The Alembic cache: a plane exported alone, then read back through a Mesh Sequence Cache whose own mesh is empty.
bpy.ops.mesh.primitive_plane_add(size=TILE * 0.1)
os.makedirs(os.path.dirname(files["alembic"]), exist_ok=True)
bpy.ops.wm.alembic_export(filepath=files["alembic"], selected=True, start=1, end=1)
bpy.ops.object.delete()

# --- the scene ----------------------------------------------------------------------------------------------
scene = bpy.context.scene
scene.name = "Kinds"
render = scene.render
render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = 1
scene.cycles.use_denoising = False
# OSL stays off: its JIT costs ~5 s a render; the script is a dependency the bundle must carry all the same
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
gn_obj = bpy.data.objects.new("GNTile", bpy.data.meshes.new("gn"))
scene.collection.objects.link(gn_obj)
tree = bpy.data.node_groups.new("GNTree", "GeometryNodeTree")
tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
gn_cube = tree.nodes.new("GeometryNodeMeshCube")
gn_cube.inputs["Size"].default_value = (TILE * 0.1, TILE * 0.1, 0.01)
gn_mat = tree.nodes.new("GeometryNodeSetMaterial")
gn_mat.inputs["Material"].default_value = emission("gn_bake", colour=(0.6, 0.0, 1.0))
gn_bake = tree.nodes.new("GeometryNodeBake")
gn_bake.bake_items.new("GEOMETRY", "Geometry")
gn_out = tree.nodes.new("NodeGroupOutput")
tree.links.new(gn_cube.outputs[0], gn_mat.inputs[0])
tree.links.new(gn_mat.outputs[0], gn_bake.inputs[0])
tree.links.new(gn_bake.outputs[0], gn_out.inputs[0])
gn_mod = gn_obj.modifiers.new("GeoNodes", "NODES")
gn_mod.node_group = tree
gn_mod.bake_target = "DISK"
gn_mod.bake_directory = "//bakes/"
tile(10, obj=gn_obj)
gn_mod.bakes[0].bake_mode = "STILL"
with bpy.context.temp_override(object=gn_obj, active_object=gn_obj):
    bpy.ops.object.geometry_node_bake_single(session_uid=gn_obj.session_uid, modifier_name=gn_mod.name,
                                             bake_id=gn_mod.bakes[0].bake_id)
gn_cube.inputs["Size"].default_value = (0.0, 0.0, 0.0)

# A fluid domain whose cache folder is absolute (not rendered: the bundle and the proof must carry it).
bpy.ops.mesh.primitive_cube_add(size=0.2, location=(0, 3, 0))
domain = bpy.context.object
domain.hide_render = True
fluid = domain.modifiers.new("Fluid", "FLUID")
fluid.show_viewport = fluid.show_render = False  # never simulated here (Mantaflow in the wheel is noisy)
fluid.fluid_type = "DOMAIN"
fluid.domain_settings.cache_directory = files["fluid"]
os.makedirs(os.path.join(files["fluid"], "config"), exist_ok=True)
with open(os.path.join(files["fluid"], "config", "config_0001.uni"), "wb") as fh:
    fh.write(b"not a real cache")

clip = bpy.data.movieclips.load(files["clip"])
seq = scene.sequence_editor_create()
seq.strips.new_image("still", files["strip"], 1, 1)
seq.strips.new_sound("tone", files["sound"], 2, 1)
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

# A second file: the same Geometry Nodes bake, in an absolute folder outside its project.
gn_mod.bake_directory = p("abs", "gnbakes")
os.makedirs(p("gnproject"), exist_ok=True)
bpy.ops.wm.save_as_mainfile(filepath=p("gnproject", "gn_abs.blend"), copy=True)
with bpy.context.temp_override(object=gn_obj, active_object=gn_obj):
    gn_cube.inputs["Size"].default_value = (TILE * 0.1, TILE * 0.1, 0.01)
    bpy.ops.object.geometry_node_bake_single(session_uid=gn_obj.session_uid, modifier_name=gn_mod.name,
                                             bake_id=gn_mod.bakes[0].bake_id)
# Variants for the output and hardware checks, saved beside the scene (same paths, one setting changed each).
gn_mod.bake_directory = "//bakes/"
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
