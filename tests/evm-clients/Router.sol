// SPDX-License-Identifier: MIT
// A test fixture, not a DEX: a fixed-rate (1:1) stand-in for a Uniswap V2 router, with Router02's
// swapExactTokensForTokens signature, so that signward's EVM transaction policy tests can send "a
// swap through a router" whose calldata is exactly what a real Uniswap V2 router receives.
// Compiled by compile.cjs into Router.json.
//
// It holds no pools: it pays the last token of `path` out of its own balance. Fund it first with
// the Token of this directory, e.g. the deployer of token B calls B.transfer(router, amount)
// (Token's constructor mints the whole supply to its deployer). The swapper approves the router
// for token A (A.approve(router, amountIn)) before swapping.
pragma solidity 0.8.37;

interface IERC20 {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

contract Router {
    function swapExactTokensForTokens(
        uint256 amountIn,
        uint256 amountOutMin,
        address[] calldata path,
        address to,
        uint256 deadline
    ) external returns (uint256[] memory amounts) {
        require(block.timestamp <= deadline, "Router: EXPIRED");
        require(path.length >= 2, "Router: INVALID_PATH");
        require(IERC20(path[0]).transferFrom(msg.sender, address(this), amountIn), "Router: TRANSFER_FROM_FAILED");
        // Every hop exchanges 1:1; the intermediate tokens never move.
        amounts = new uint256[](path.length);
        for (uint256 i = 0; i < path.length; i++) {
            amounts[i] = amountIn;
        }
        uint256 amountOut = amounts[path.length - 1];
        require(amountOut >= amountOutMin, "Router: INSUFFICIENT_OUTPUT_AMOUNT");
        require(IERC20(path[path.length - 1]).transfer(to, amountOut), "Router: TRANSFER_FAILED");
    }
}
