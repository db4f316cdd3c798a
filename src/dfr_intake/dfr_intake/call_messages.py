"""A call as dfr_interfaces/Call and as intake's Call dataclass: one conversion for every path in.

The intake service, the scenario feed and the CAD gateway all speak of calls; they
convert here, so a field added to the message is added once.
"""
from __future__ import annotations

from dfr_common.ros.stamps import from_seconds, to_seconds
from dfr_intake.calls import Call
from dfr_interfaces.msg import Call as CallMsg


def call_from_msg(msg: CallMsg) -> Call:
    return Call(cad_ref=msg.cad_ref, call_time_s=to_seconds(msg.call_time), grade=msg.grade,
                category=msg.category, latitude=msg.latitude, longitude=msg.longitude,
                location_uncertainty_m=msg.location_uncertainty_m, address=msg.address,
                description=msg.description, suspect_description=msg.suspect_description)


def call_to_msg(call: Call) -> CallMsg:
    return CallMsg(cad_ref=call.cad_ref, call_time=from_seconds(call.call_time_s), grade=call.grade,
                   category=call.category, latitude=call.latitude, longitude=call.longitude,
                   location_uncertainty_m=float(call.location_uncertainty_m), address=call.address,
                   description=call.description, suspect_description=call.suspect_description)
