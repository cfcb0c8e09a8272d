#!/usr/bin/env python3
"""A small stand-in for Klipper's API server ("Klippy") on a unix socket, enough for a real Moonraker to
reach `ready` and serve print state, pause, resume and cancel. Messages are JSON terminated by byte 0x03.
Usage: fake_klippy.py SOCKET_PATH. Runs until killed."""
import asyncio
import json
import os
import sys
import time

SOCK = sys.argv[1]
ETX = b"\x03"
ENDPOINTS = [
    "info", "list_endpoints", "objects/list", "objects/query", "objects/subscribe", "gcode/script",
    "gcode/subscribe_output", "gcode/help", "register_remote_method", "pause_resume/pause",
    "pause_resume/resume", "pause_resume/cancel", "emergency_stop", "gcode/restart", "gcode/firmware_restart",
]
objects = {
    "webhooks": {"state": "ready", "state_message": "Printer is ready"},
    "print_stats": {"filename": "", "total_duration": 0.0, "print_duration": 0.0, "filament_used": 0.0,
                    "state": "standby", "message": "", "info": {"total_layer": None, "current_layer": None}},
    "pause_resume": {"is_paused": False},
    "virtual_sdcard": {"file_path": None, "progress": 0.0, "is_active": False, "file_position": 0, "file_size": 0},
    "display_status": {"progress": 0.0, "message": None},
    "heaters": {"available_heaters": ["extruder"], "available_sensors": ["extruder"], "available_monitors": []},
    "extruder": {"temperature": 21.0, "target": 0.0, "power": 0.0},
    "toolhead": {"homed_axes": "", "print_time": 0.0, "estimated_print_time": 0.0},
    "configfile": {"config": {}, "settings": {}, "save_config_pending": False},
}
writers = set()
subscribed = {}
started = time.monotonic()


def now():
    return time.monotonic() - started


def view(names):
    out = {}
    for name, fields in (names or {}).items():
        obj = objects.get(name)
        if obj is None:
            continue
        out[name] = dict(obj) if not fields else {k: obj[k] for k in fields if k in obj}
    return out


def push(changed):
    msg = json.dumps({"method": "process_status_update", "params": {"eventtime": now(), "status": changed}}).encode()
    for w in list(writers):
        try:
            w.write(msg + ETX)
        except Exception:
            writers.discard(w)


def set_state(state, filename=None):
    ps = objects["print_stats"]
    ps["state"] = state
    if filename is not None:
        ps["filename"] = filename
    objects["pause_resume"]["is_paused"] = state == "paused"
    objects["virtual_sdcard"]["is_active"] = state == "printing"
    push({"print_stats": {"state": state, "filename": ps["filename"]},
          "pause_resume": {"is_paused": state == "paused"},
          "virtual_sdcard": {"is_active": state == "printing"}})


def script(text):
    for line in text.splitlines():
        words = line.strip().split()
        if not words:
            continue
        cmd = words[0].upper()
        if cmd == "SDCARD_PRINT_FILE":
            name = next((w.split("=", 1)[1].strip('"') for w in words[1:] if w.upper().startswith("FILENAME=")), "")
            objects["print_stats"]["total_duration"] = 0.0
            set_state("printing", name)
        elif cmd == "PAUSE":
            pause()
        elif cmd == "RESUME":
            resume()
        elif cmd == "CANCEL_PRINT":
            set_state("cancelled")


def pause():
    if objects["print_stats"]["state"] != "printing":
        raise ValueError("Print is not in progress")
    set_state("paused")


def resume():
    if objects["print_stats"]["state"] != "paused":
        raise ValueError("Print is not paused, resume aborted")
    set_state("printing")


def handle(method, params):
    if method == "info":
        return {"state": "ready", "state_message": "Printer is ready", "hostname": "fake-klippy",
                "software_version": "v0.12.0-fake", "cpu_info": "test", "klipper_path": "/tmp",
                "python_path": sys.executable, "log_file": "/tmp/klippy.log", "config_file": "/tmp/printer.cfg"}
    if method == "list_endpoints":
        return {"endpoints": ENDPOINTS}
    if method == "objects/list":
        return {"objects": list(objects)}
    if method in ("objects/query", "objects/subscribe"):
        if method == "objects/subscribe":
            subscribed.update(params.get("objects") or {})
        return {"eventtime": now(), "status": view(params.get("objects"))}
    if method in ("gcode/subscribe_output", "register_remote_method", "gcode/restart", "gcode/firmware_restart"):
        return {}
    if method == "gcode/script":
        script(params.get("script", ""))
        return {}
    if method == "gcode/help":
        return {"PAUSE": "Pauses the current print", "RESUME": "Resumes the print from a pause"}
    if method == "pause_resume/pause":
        pause()
        return {}
    if method == "pause_resume/resume":
        resume()
        return {}
    if method == "pause_resume/cancel":
        set_state("cancelled")
        return {}
    raise KeyError(f"Unknown endpoint {method}")


async def client(reader, writer):
    writers.add(writer)
    try:
        while True:
            data = await reader.readuntil(ETX)
            req = json.loads(data[:-1])
            try:
                resp = {"id": req.get("id"), "result": handle(req.get("method"), req.get("params") or {})}
            except Exception as e:  # an error answer, as Klippy gives
                resp = {"id": req.get("id"), "error": {"error": "WebRequestError", "message": str(e)}}
            writer.write(json.dumps(resp).encode() + ETX)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writers.discard(writer)


async def ticker():
    # Klippy reports its durations while a job is loaded, paused too (else a resume looks like a new job).
    while True:
        await asyncio.sleep(0.25)
        ps = objects["print_stats"]
        if ps["state"] in ("printing", "paused"):
            ps["total_duration"] += 0.25
            changed = {"total_duration": ps["total_duration"]}
            if ps["state"] == "printing":
                ps["print_duration"] += 0.25
                changed["print_duration"] = ps["print_duration"]
            push({"print_stats": changed})


async def main():
    if os.path.exists(SOCK):
        os.unlink(SOCK)
    server = await asyncio.start_unix_server(client, path=SOCK)
    print("ready", flush=True)
    async with server:
        await asyncio.gather(server.serve_forever(), ticker())


asyncio.run(main())
