#!/usr/bin/env python3
"""A test RTSP server on 127.0.0.1: GStreamer's RTSP server library serving a moving test pattern as
RTP/JPEG at /cam. Usage: rtsp_server.py PORT [WIDTH HEIGHT FPS]. Runs until killed."""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

port = sys.argv[1]
w, h, fps = (sys.argv[2:5] + ["320", "240", "10"][len(sys.argv[2:5]):])[:3]
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 "
    f"! jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit("cannot listen on port " + port)
print("ready", flush=True)
GLib.MainLoop().run()
