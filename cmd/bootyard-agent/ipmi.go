package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/bootyard/bootyard/agentapi"
)

// The in-band IPMI interface of Linux's ipmi_devintf (include/uapi/linux/ipmi.h): a
// request to the BMC goes out with IPMICTL_SEND_COMMAND and its answer comes back,
// once the device is readable, with IPMICTL_RECEIVE_MSG_TRUNC. The structs mirror the
// kernel's on 64-bit Linux, padding included.

const (
	ipmiSystemInterfaceAddrType = 0x0c
	ipmiBMCChannel              = 0x0f
	ipmiResponseRecvType        = 1
	ipmiNetFnTransport          = 0x0c
	ipmiCmdGetLANConfig         = 0x02
	ipmiLANParamIPAddress       = 3
	// IPMI channel numbers 1 to 11 are the implementation's (IPMI 2.0 section 6.3); LAN is
	// usually 1, and a BMC answers "invalid" for a channel that is not LAN.
	ipmiMaxChannel = 11
)

type ipmiSystemInterfaceAddr struct {
	addrType int32
	channel  int16
	lun      uint8
	_        uint8
}

type ipmiMsg struct {
	netfn   uint8
	cmd     uint8
	dataLen uint16
	_       uint32
	data    uintptr
}

type ipmiReq struct {
	addr    uintptr
	addrLen uint32
	_       uint32
	msgid   int64
	msg     ipmiMsg
}

type ipmiRecv struct {
	recvType int32
	_        uint32
	addr     uintptr
	addrLen  uint32
	_        uint32
	msgid    int64
	msg      ipmiMsg
}

// ioctl numbers: _IOR('i', 13, struct ipmi_req) and _IOWR('i', 11, struct ipmi_recv).
var (
	ipmictlSendCommand    = ioc(2, 'i', 13, unsafe.Sizeof(ipmiReq{}))
	ipmictlReceiveMsgTrun = ioc(3, 'i', 11, unsafe.Sizeof(ipmiRecv{}))
)

func ioc(dir, typ, nr, size uintptr) uintptr { return dir<<30 | size<<16 | typ<<8 | nr }

// lanAddress asks the BMC behind device (/dev/ipmi0) for LAN configuration parameter
// 3, the IP address, on each channel until one answers with an address; an unset
// address (0.0.0.0) counts as none. A missing device is os.ErrNotExist.
func lanAddress(ctx context.Context, device string) (*agentapi.BMC, error) {
	fd, err := unix.Open(device, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) {
			// No device, or no BMC behind the driver: a machine without in-band IPMI.
			return nil, fmt.Errorf("%s: %v: %w", device, err, os.ErrNotExist)
		}
		return nil, fmt.Errorf("open %s: %w", device, err)
	}
	defer unix.Close(fd)
	var errs []error
	for ch := 1; ch <= ipmiMaxChannel; ch++ {
		resp, err := ipmiCall(ctx, fd, int64(ch), ipmiNetFnTransport, ipmiCmdGetLANConfig, []byte{byte(ch), ipmiLANParamIPAddress, 0, 0})
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			errs = append(errs, fmt.Errorf("channel %d: %w", ch, err))
			continue
		}
		// completion code, parameter revision, then the 4 address bytes.
		if len(resp) < 6 || resp[0] != 0 {
			errs = append(errs, fmt.Errorf("channel %d: completion code %#x", ch, firstByte(resp)))
			continue
		}
		addr := netip.AddrFrom4([4]byte(resp[2:6]))
		if addr.IsUnspecified() {
			errs = append(errs, fmt.Errorf("channel %d: no address set", ch))
			continue
		}
		return &agentapi.BMC{Address: addr.String(), Channel: ch}, nil
	}
	// Every channel's answer, so a log line tells a BMC without LAN configuration
	// (0xc1 on each) from one whose LAN channel has no address.
	return nil, fmt.Errorf("BMC LAN address: %w", errors.Join(errs...))
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0xff
	}
	return b[0]
}

// ipmiCall sends one request to the BMC and waits (up to 5 s, or ctx) for its answer.
func ipmiCall(ctx context.Context, fd int, msgid int64, netfn, cmd uint8, data []byte) ([]byte, error) {
	addr := &ipmiSystemInterfaceAddr{addrType: ipmiSystemInterfaceAddrType, channel: ipmiBMCChannel}
	body := make([]byte, len(data))
	copy(body, data)
	req := &ipmiReq{addr: uintptr(unsafe.Pointer(addr)), addrLen: uint32(unsafe.Sizeof(*addr)), msgid: msgid,
		msg: ipmiMsg{netfn: netfn, cmd: cmd, dataLen: uint16(len(body)), data: uintptr(unsafe.Pointer(&body[0]))}}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ipmictlSendCommand, uintptr(unsafe.Pointer(req)))
	runtime.KeepAlive(addr)
	runtime.KeepAlive(body)
	runtime.KeepAlive(req)
	if errno != 0 {
		return nil, fmt.Errorf("ipmi send netfn %#x cmd %#x: %w", netfn, cmd, errno)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, fmt.Errorf("ipmi netfn %#x cmd %#x: no answer in 5s", netfn, cmd)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(min(wait, 500*time.Millisecond).Milliseconds()))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return nil, fmt.Errorf("ipmi poll: %w", err)
		}
		if n <= 0 {
			continue
		}
		raddr := &ipmiSystemInterfaceAddr{}
		buf := make([]byte, 256)
		recv := &ipmiRecv{addr: uintptr(unsafe.Pointer(raddr)), addrLen: uint32(unsafe.Sizeof(*raddr)),
			msg: ipmiMsg{dataLen: uint16(len(buf)), data: uintptr(unsafe.Pointer(&buf[0]))}}
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ipmictlReceiveMsgTrun, uintptr(unsafe.Pointer(recv)))
		runtime.KeepAlive(raddr)
		runtime.KeepAlive(buf)
		runtime.KeepAlive(recv)
		if errno != 0 && errno != unix.EMSGSIZE {
			return nil, fmt.Errorf("ipmi receive: %w", errno)
		}
		if recv.recvType != ipmiResponseRecvType || recv.msgid != msgid {
			continue // an event or a late answer to an earlier request
		}
		return buf[:min(int(recv.msg.dataLen), len(buf))], nil
	}
}
