// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

/// Forwards the ETH it receives to a fixed target in an internal call, and a few other ways of moving
/// value inside a transaction: a call whose failure is ignored, a contract creation with value, and a
/// self-destruct.
contract Forwarder {
    address payable public immutable target;

    constructor(address payable target_) payable {
        target = target_;
    }

    receive() external payable {
        (bool ok, ) = target.call{value: msg.value}("");
        require(ok, "forward failed");
    }

    /// Sends the value to `to`; if that call fails, the value stays here and the transaction succeeds.
    function tryForward(address payable to) external payable returns (bool ok) {
        (ok, ) = to.call{value: msg.value}("");
    }

    /// Creates a Vault holding the value sent.
    function spawn() external payable returns (address) {
        return address(new Vault{value: msg.value}());
    }

    /// Sends this contract's whole balance to `to` by self-destructing.
    function close(address payable to) external {
        selfdestruct(to);
    }
}

/// Holds what it was created with.
contract Vault {
    constructor() payable {}
}
