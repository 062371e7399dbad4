// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

// Minimal contracts that emit the real events of the protocols conversion detection reads: a
// Uniswap-v2-style pair, a Tornado-Cash-style 10-ETH pool and a Celer-cBridge-style bridge. Test use only:
// no fees, no proofs, no signatures.

interface IERC20 {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
    function balanceOf(address who) external view returns (uint256);
}

/// A constant-product pair of two ERC-20 tokens; ``swap`` pulls the input (after an approve), pays the
/// output and emits Uniswap v2's ``Swap``.
contract Pair {
    address public immutable token0;
    address public immutable token1;

    event Swap(address indexed sender, uint256 amount0In, uint256 amount1In, uint256 amount0Out,
               uint256 amount1Out, address indexed to);

    constructor(address a, address b) {
        token0 = a;
        token1 = b;
    }

    function swap(address tokenIn, uint256 amountIn, address to) external returns (uint256 amountOut) {
        bool zeroIn = tokenIn == token0;
        require(zeroIn || tokenIn == token1, "token");
        address tokenOut = zeroIn ? token1 : token0;
        uint256 reserveIn = IERC20(tokenIn).balanceOf(address(this));
        uint256 reserveOut = IERC20(tokenOut).balanceOf(address(this));
        amountOut = amountIn * reserveOut / (reserveIn + amountIn);
        require(IERC20(tokenIn).transferFrom(msg.sender, address(this), amountIn), "in");
        require(IERC20(tokenOut).transfer(to, amountOut), "out");
        if (zeroIn) {
            emit Swap(msg.sender, amountIn, 0, 0, amountOut, to);
        } else {
            emit Swap(msg.sender, 0, amountIn, amountOut, 0, to);
        }
    }
}

/// A fixed-denomination (10 ETH) pool with Tornado Cash's events; withdrawals need no proof here.
contract Pool {
    uint256 public constant denomination = 10 ether;
    uint32 public nextIndex;
    mapping(bytes32 => bool) public commitments;
    mapping(bytes32 => bool) public nullifierHashes;

    event Deposit(bytes32 indexed commitment, uint32 leafIndex, uint256 timestamp);
    event Withdrawal(address to, bytes32 nullifierHash, address indexed relayer, uint256 fee);

    function deposit(bytes32 commitment) external payable {
        require(msg.value == denomination, "denomination");
        require(!commitments[commitment], "commitment");
        commitments[commitment] = true;
        emit Deposit(commitment, nextIndex, block.timestamp);
        nextIndex += 1;
    }

    function withdraw(bytes32 nullifierHash, address payable to, address payable relayer, uint256 fee) external {
        require(!nullifierHashes[nullifierHash], "spent");
        require(fee <= denomination, "fee");
        nullifierHashes[nullifierHash] = true;
        (bool ok, ) = to.call{value: denomination - fee}("");
        require(ok, "pay");
        if (fee > 0) {
            (ok, ) = relayer.call{value: fee}("");
            require(ok, "relayer");
        }
        emit Withdrawal(to, nullifierHash, relayer, fee);
    }
}

/// A token bridge with Celer cBridge's ``Send`` and ``Relay`` events and transfer ids.
contract Bridge {
    address public immutable owner;

    event Send(bytes32 transferId, address sender, address receiver, address token, uint256 amount,
               uint64 dstChainId, uint64 nonce, uint32 maxSlippage);
    event Relay(bytes32 transferId, address sender, address receiver, address token, uint256 amount,
                uint64 srcChainId, bytes32 srcTransferId);

    constructor() {
        owner = msg.sender;
    }

    function send(address receiver, address token, uint256 amount, uint64 dstChainId, uint64 nonce,
                  uint32 maxSlippage) external {
        bytes32 transferId = keccak256(abi.encodePacked(msg.sender, receiver, token, amount, dstChainId, nonce,
                                                        uint64(block.chainid)));
        require(IERC20(token).transferFrom(msg.sender, address(this), amount), "lock");
        emit Send(transferId, msg.sender, receiver, token, amount, dstChainId, nonce, maxSlippage);
    }

    function relay(address sender, address receiver, address token, uint256 amount, uint64 srcChainId,
                   bytes32 srcTransferId) external {
        require(msg.sender == owner, "owner");
        bytes32 transferId = keccak256(abi.encodePacked(sender, receiver, token, amount, srcChainId,
                                                        uint64(block.chainid), srcTransferId));
        require(IERC20(token).transfer(receiver, amount), "release");
        emit Relay(transferId, sender, receiver, token, amount, srcChainId, srcTransferId);
    }
}
